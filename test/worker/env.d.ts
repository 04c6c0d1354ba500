declare namespace Cloudflare {
  interface Env {
    /** Set only by vitest.config.ts for the in-runtime tests. */
    TEST_MIGRATIONS?: import("cloudflare:test").D1Migration[];
  }
}

import { defineConfig } from "drizzle-kit";

/** `npm run db:generate` writes SQL migrations for wrangler into migrations/. */
export default defineConfig({
  dialect: "sqlite",
  schema: "./src/db/schema.ts",
  out: "./migrations",
});

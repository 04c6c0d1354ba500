// One Worker from its wrangler config under the Miniflare API directly: workerd with the same
// bindings `wrangler dev` would give it (options from wrangler's own unstable_getMiniflareWorkerOptions),
// without wrangler dev's proxy (a second workerd and the Node process every request passes through).
//   node bench/lib/miniflare-host.mjs <wrangler.toml> <port> <inspector port> <state dir> [bundle]
// State goes to <state dir>/v3/<plugin>, the layout of `wrangler dev --persist-to <state dir>`.
import { join } from "node:path";
import { Miniflare, convertV4MiniflareOptions } from "miniflare";
import { unstable_getMiniflareWorkerOptions, unstable_readConfig } from "wrangler";

const [configPath, port, inspectorPort, stateDir, bundle] = process.argv.slice(2);
const config = unstable_readConfig({ config: configPath });
const { workerOptions } = unstable_getMiniflareWorkerOptions(config);
// A single ES module (a pre-built bundle, or the relay's worker.js): no module rules to apply.
delete workerOptions.modulesRules;
const mf = new Miniflare(
  convertV4MiniflareOptions({
    host: "127.0.0.1",
    port: Number(port),
    inspectorPort: Number(inspectorPort),
    resourcePersistencePath: join(stateDir, "v3"),
    workers: [{ ...workerOptions, modules: true, scriptPath: bundle ?? config.main }],
  }),
);
console.log(`ready ${await mf.ready}`);
const stop = () => mf.dispose().finally(() => process.exit(0));
process.once("SIGTERM", stop);
process.once("SIGINT", stop);

// Checks a docker compose file offline (no Docker engine): it parses, every service has an image or a
// build whose context (and Dockerfile) exists, and every relative bind-mount source exists.
// Usage: node scripts/ci/check-compose.mjs FILE...   (needs the npm package "yaml" on NODE_PATH)
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";

const require = createRequire(import.meta.url);
const YAML = require("yaml");

let errors = 0;
const fail = (file, message) => { console.error(`${file}: ${message}`); errors++; };

for (const file of process.argv.slice(2)) {
  const errorsBefore = errors;
  const dir = dirname(resolve(file));
  const doc = YAML.parseDocument(readFileSync(file, "utf8"), { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    for (const e of doc.errors) fail(file, e.message);
    continue;
  }
  const compose = doc.toJS();
  if (!compose || typeof compose.services !== "object") {
    fail(file, "no services");
    continue;
  }
  for (const [name, service] of Object.entries(compose.services)) {
    if (!service || typeof service !== "object") {
      fail(file, `service ${name}: empty`);
      continue;
    }
    const overlay = !service.image && !service.build;
    if (service.build) {
      const build = typeof service.build === "string" ? { context: service.build } : service.build;
      const context = resolve(dir, build.context ?? ".");
      if (!existsSync(context)) fail(file, `service ${name}: build context ${build.context} does not exist`);
      const dockerfile = resolve(context, build.dockerfile ?? "Dockerfile");
      if (!existsSync(dockerfile)) fail(file, `service ${name}: ${dockerfile} does not exist`);
    }
    for (const volume of service.volumes ?? []) {
      const source = typeof volume === "string" ? volume.split(":")[0] : volume.source;
      if (source && (source.startsWith(".") || source.startsWith("/"))) {
        if (!existsSync(resolve(dir, source))) fail(file, `service ${name}: bind-mount source ${source} does not exist`);
      } else if (source && !(compose.volumes && source in compose.volumes) && !overlay) {
        fail(file, `service ${name}: named volume ${source} is not declared under volumes`);
      }
    }
    for (const port of service.ports ?? []) {
      if (typeof port === "string" && !/^(\d{1,3}(\.\d{1,3}){3}:)?(\d+:)?\d+(\/(tcp|udp))?$/.test(port)) {
        fail(file, `service ${name}: port "${port}" is not [ip:][host:]container`);
      }
    }
    for (const dep of [].concat(Array.isArray(service.depends_on) ? service.depends_on : Object.keys(service.depends_on ?? {}))) {
      if (!(dep in compose.services) && !overlay) fail(file, `service ${name}: depends_on ${dep}, which is not a service here`);
    }
  }
  if (errors === errorsBefore) console.log(`${file}: ${Object.keys(compose.services).length} services ok`);
}
process.exit(errors > 0 ? 1 : 0);

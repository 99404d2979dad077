/**
 * Turns the tarball `deno pack` builds into the npm package we publish.
 *
 *   deno run --allow-read --allow-write --allow-run=tar .ci/checks/npm_package.ts \
 *     <deno-pack.tgz> <out.tgz> [--repository https://github.com/<owner>/<repo>]
 *
 * `deno pack` (Deno 2.9) writes a package.json of its own and reads none:
 * every `npm:` import becomes a dependency, and there is no field for the
 * repository. So this script rewrites that package.json and packs again:
 *
 * - the database drivers (`redis`, `pg`, `mysql2`) move from `dependencies`
 *   to optional `peerDependencies`: a user of the memory, Deno KV or SQLite
 *   storage installs none of them, and a user of `@sessionkit/grammy/redis`
 *   installs `redis` next to it (npm checks the version range; for `redis`
 *   it is `^4 || ^5`, since a v4 client the user made fits too);
 * - `description` comes from deno.json, `engines` says Node 20+;
 * - `repository` is set when given (npm's provenance needs it to match the
 *   repository the workflow runs in; the workflow passes it).
 *
 * Every other file of the tarball is kept as it is.
 */

const DRIVERS = ["redis", "pg", "mysql2"];
/**
 * Peer ranges wider than the import's: `RedisStorage` takes a client the
 * user made, and node-redis v4 clients fit it too (tests/redis_v4_test.ts).
 */
const PEER_RANGES: Record<string, string> = { redis: "^4 || ^5" };

type Manifest = Record<string, unknown> & {
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional: boolean }>;
};

function usage(message: string): never {
  console.error(`npm_package: ${message}`);
  console.error(
    "usage: npm_package.ts <deno-pack.tgz> <out.tgz> [--repository https://github.com/<owner>/<repo>]",
  );
  Deno.exit(2);
}

function parseArgs(args: string[]): { input: string; output: string; repository?: string } {
  const positional: string[] = [];
  let repository: string | undefined;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--repository") {
      repository = args[++i];
      if (!repository) usage("--repository needs a URL");
    } else positional.push(args[i]);
  }
  if (positional.length !== 2) usage("expected an input and an output tarball");
  return { input: positional[0], output: positional[1], repository };
}

async function tar(args: string[]): Promise<void> {
  const { code, stderr } = await new Deno.Command("tar", { args, stderr: "piped" }).output();
  if (code !== 0) {
    throw new Error(`tar ${args.join(" ")} failed: ${new TextDecoder().decode(stderr)}`);
  }
}

/** The package.json of the npm package, from the one `deno pack` wrote. */
export function rewriteManifest(
  packed: Manifest,
  description: string | undefined,
  repository: string | undefined,
): Manifest {
  const dependencies = { ...packed.dependencies };
  const peerDependencies: Record<string, string> = { ...packed.peerDependencies };
  const peerDependenciesMeta: Record<string, { optional: boolean }> = {
    ...packed.peerDependenciesMeta,
  };
  for (const name of DRIVERS) {
    const range = dependencies[name];
    if (range === undefined) continue;
    delete dependencies[name];
    peerDependencies[name] = PEER_RANGES[name] ?? range;
    peerDependenciesMeta[name] = { optional: true };
  }
  const out: Manifest = { ...packed };
  if (description !== undefined) out.description = description;
  if (repository !== undefined) {
    out.repository = { type: "git", url: `git+${repository.replace(/\/$/, "")}.git` };
  }
  out.engines = { node: ">=20" };
  delete out.dependencies;
  delete out.peerDependencies;
  delete out.peerDependenciesMeta;
  if (Object.keys(dependencies).length > 0) out.dependencies = dependencies;
  if (Object.keys(peerDependencies).length > 0) {
    out.peerDependencies = peerDependencies;
    out.peerDependenciesMeta = peerDependenciesMeta;
  }
  return out;
}

if (import.meta.main) {
  const { input, output, repository } = parseArgs(Deno.args);
  if (repository !== undefined && !/^https:\/\/\S+$/.test(repository)) {
    usage(`--repository must be an https URL, got ${JSON.stringify(repository)}`);
  }
  const root = new URL("../../", import.meta.url);
  const denoJson = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
  const work = await Deno.makeTempDir({ prefix: "sk-npm-package-" });
  try {
    await tar(["-xzf", input, "-C", work]);
    const manifestPath = `${work}/package/package.json`;
    const packed = JSON.parse(await Deno.readTextFile(manifestPath)) as Manifest;
    const manifest = rewriteManifest(packed, denoJson.description, repository);
    await Deno.writeTextFile(manifestPath, JSON.stringify(manifest, null, 2) + "\n");
    const outPath = output.startsWith("/") ? output : `${Deno.cwd()}/${output}`;
    await tar([
      "--sort=name",
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      "-czf",
      outPath,
      "-C",
      work,
      "package",
    ]);
    console.log(`npm_package: ${outPath}`);
    console.log(`  dependencies: ${JSON.stringify(manifest.dependencies ?? {})}`);
    console.log(`  optional peerDependencies: ${JSON.stringify(manifest.peerDependencies ?? {})}`);
    if (repository !== undefined) console.log(`  repository: ${repository}`);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";

/**
 * Builds the page (src/ui) into `outDir` (default dist/ui): one ES module
 * bundle and one stylesheet with content hashes in their names (cached for a
 * year), and index.html naming them (revalidated on every load). No CDN: the
 * Connect client and the OpenID Connect library are bundled in.
 */
export async function buildUi(root = process.cwd(), outDir = join(root, "dist", "ui")): Promise<void> {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const result = await build({
    entryPoints: [join(root, "src/ui/main.ts"), join(root, "src/ui/style.css")],
    bundle: true,
    format: "esm",
    target: ["es2022"],
    platform: "browser",
    minify: true,
    sourcemap: "linked",
    entryNames: "[name]-[hash]",
    outdir: outDir,
    metafile: true,
    logLevel: "warning",
  });
  const outputs = Object.entries(result.metafile.outputs);
  const named = (entry: string) => {
    const found = outputs.find(([, o]) => o.entryPoint?.endsWith(entry));
    if (found === undefined) throw new Error(`esbuild wrote no output for ${entry}`);
    return basename(found[0]);
  };
  const html = readFileSync(join(root, "src/ui/index.html"), "utf8")
    .replace("%MAIN_JS%", named("src/ui/main.ts"))
    .replace("%STYLE_CSS%", named("src/ui/style.css"));
  writeFileSync(join(outDir, "index.html"), html);
}

// `node dist/scripts/build-ui.js` (npm run build) builds from the working directory.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await buildUi();
}

#!/usr/bin/env bash
# `npm run check:package` (part of `npm test`): install the package the way a user does and use it.
#   1. pack the package users install (npm run stage) and the host's platform package (npm/<platform>
#      with the binary built here), as `npm publish` would;
#   2. lint the tarball: publint, and @arethetypeswrong/cli (profile esm-only: the package is an
#      ES module; CommonJS loads it with require() of an ES module, Node >= 20.19);
#   3. install both tarballs into an empty project with no network (npm --offline, and a network
#      namespace of its own where `unshare -rn` works) and no cargo on PATH;
#   4. run there, with plain node, an ES module and a CommonJS program that start a Process and use
#      a Queue, a Lock and a Pool (the ES module also threads: node-multiprocessing/dummy);
#   5. type-check a consumer's TypeScript with --strict and without skipLibCheck (moduleResolution
#      node16, bundler, and nodenext with a CommonJS file);
#   6. install the package without its platform package: the import fails with the loader's error.
# Needs a build (npm run build) first.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
here=$root/scripts/package-check
bin=$root/node_modules/.bin
work=$(mktemp -d "${TMPDIR:-/tmp}/mp-package-check.XXXXXX")
trap '[ -n "${KEEP_WORK:-}" ] || rm -rf "$work"' EXIT

step() { printf "\n== check:package (%ss): %s\n" "$SECONDS" "$*"; }

platform=$(node --input-type=module -e "import { platformName } from '$root/dist/src/native.js'; console.log(platformName())")
version=$(node -p "require('$root/package.json').version")
binary=$root/native/multiprocessing.$platform.node
[ -f "$binary" ] || { echo "check:package: $binary is missing; run npm run build" >&2; exit 1; }
[ -d "$root/npm/$platform" ] || { echo "check:package: no platform package npm/$platform for this host" >&2; exit 1; }

step "pack node-multiprocessing and node-multiprocessing-$platform"
node scripts/stage.mjs "$work/stage" >/dev/null
mkdir "$work/platform"
cp "npm/$platform/package.json" "npm/$platform/README.md" "$binary" "$work/platform/"
(cd "$work" && npm pack ./stage ./platform --silent)
main_tgz=$work/node-multiprocessing-$version.tgz
platform_tgz=$work/node-multiprocessing-$platform-$version.tgz
# Only what users need: the compiled modules and their declarations, no sources, maps or binaries.
extra=$(tar -tzf "$main_tgz" | grep -vE '^package/(package\.json|README\.md|LICENSE|dist/index\.(js|d\.ts)|dist/src/[a-z_]+\.(js|d\.ts)|dist/native/binding\.d\.cts)$' || true)
[ -z "$extra" ] || { echo "check:package: unexpected files in the package:" >&2; echo "$extra" >&2; exit 1; }
# The manifest users get has no scripts (no install script runs on their machine) and no contributor fields.
tar -xzOf "$main_tgz" package/package.json | node -e "
  const m = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
  const bad = ['scripts', 'devDependencies', 'private', 'napi', 'ava'].filter((k) => k in m);
  if (bad.length) { console.error('check:package: the published package.json has ' + bad.join(', ')); process.exit(1); }"
echo "  $(tar -tzf "$main_tgz" | wc -l) files in $(basename "$main_tgz"); $(tar -tzf "$platform_tgz" | tr '\n' ' ')"

step "publint, attw"
"$bin/publint" run --strict "$main_tgz"
attw() { "$bin/attw" --profile esm-only --no-emoji "$@" "$main_tgz"; }
if attw --quiet; then echo "  attw: no problems"; else attw; exit 1; fi

# No cargo: PATH without the directories that hold cargo or rustc; no network: npm offline with
# an unreachable registry, in a network namespace of its own when the kernel allows one.
nocargo_path=$(node -e "
  const { existsSync } = require('node:fs');
  const dirs = process.env.PATH.split(':').filter((d) => d && !['cargo', 'rustc'].some((b) => existsSync(d + '/' + b)));
  process.stdout.write(dirs.join(':'))")
isolated() {
  local net=()
  if unshare -rn true 2>/dev/null; then net=(unshare -rn); fi
  env PATH="$nocargo_path" npm_config_offline=true npm_config_registry=http://127.0.0.1:9/ \
    npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false "${net[@]}" "$@"
}
if isolated sh -c 'command -v cargo' >/dev/null; then echo "check:package: cargo still on PATH" >&2; exit 1; fi
if unshare -rn true 2>/dev/null; then echo "(no network: unshare -rn and npm --offline)"; else echo "(no network: npm --offline)"; fi

step "install both into an empty project"
app=$work/app
mkdir "$app"
echo '{ "name": "app", "private": true }' >"$app/package.json"
(cd "$app" && isolated npm install --no-save "$main_tgz" "$platform_tgz")
[ ! -e "$app/node_modules/node-multiprocessing/native" ] || { echo "check:package: the package has a native/ build" >&2; exit 1; }
cp "$here/esm.mjs" "$here/cjs.cjs" "$here/consumer.mts" "$here/consumer.cts" "$here"/tsconfig.*.json "$app/"
# Every subpath of `exports`, imported by a consumer file, so that a new one is type-checked too.
node -e "
  const pkg = require('$root/package.json');
  const subs = Object.keys(pkg.exports).filter((k) => k !== './package.json');
  console.log(subs.map((k, i) => 'export * as m' + i + \" from 'node-multiprocessing\" + k.slice(1) + \"';\").join('\\n'));
" >"$app/subpaths.mts"

step "run an ES module and a CommonJS program with plain node"
(cd "$app" && isolated node esm.mjs && isolated node cjs.cjs)

step "tsc --strict, no skipLibCheck: node16, bundler, nodenext (with CommonJS)"
# The consumer's own @types/node, as any Node project has.
mkdir -p "$app/node_modules/@types" && ln -s "$root/node_modules/@types/node" "$app/node_modules/@types/node"
# The three at once: two cores do them in about the time of two.
pids=()
for c in node16 bundler nodenext; do (cd "$app" && "$bin/tsc" -p "tsconfig.$c.json" && echo "  $c: ok") & pids+=($!); done
for p in "${pids[@]}"; do wait "$p"; done

step "without the platform package, the import fails with the loader's error"
bare=$work/bare
mkdir "$bare"
echo '{ "name": "bare", "private": true }' >"$bare/package.json"
(cd "$bare" && isolated npm install --no-save "$main_tgz")
if out=$(cd "$bare" && isolated node -e "require('node-multiprocessing')" 2>&1); then
  echo "check:package: loaded without a native engine" >&2; exit 1
fi
for want in "ERR_MULTIPROCESSING_NO_NATIVE" "native engine for $platform" "node-multiprocessing-$platform" "build from source"; do
  grep -qF "$want" <<<"$out" || { echo "check:package: the error does not say '$want':" >&2; echo "$out" >&2; exit 1; }
done
echo "  ok: $(grep -F 'could not load' <<<"$out")"
step "all good"

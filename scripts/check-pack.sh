#!/usr/bin/env bash
# Proves the npm pack tarball installs into a fresh directory and imports with its types.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$root"
tarball="$(npm pack --silent --pack-destination "$work" | tail -n 1)"
cd "$work"
npm init -y >/dev/null
npm pkg set type=module >/dev/null
npm install --no-audit --no-fund --silent "./$tarball"
cat > consumer.ts <<'TS'
import { tensor, gradcheck, valueAndGrad, type Tensor } from 'ganpo';
const x: Tensor = tensor([1, 2, 3], [3], { dtype: 'f64' });
const { value } = valueAndGrad((a: Tensor) => a.mul(a).sum())(x);
const check = gradcheck((a: Tensor) => a.tanh().sum(), [x]);
if (value.itemSync() !== 14 || !check.ok) throw new Error('consumer check failed');
console.log('package import ok:', value.itemSync(), check.ok);
TS
cat > tsconfig.json <<'TS'
{ "compilerOptions": { "module": "NodeNext", "moduleResolution": "NodeNext", "target": "ES2022", "strict": true, "noEmit": true, "skipLibCheck": false, "types": [] }, "files": ["consumer.ts"] }
TS
"$root/node_modules/.bin/tsc" -p tsconfig.json
"$root/node_modules/.bin/tsc" --module NodeNext --moduleResolution NodeNext --target ES2022 --outDir out consumer.ts
node out/consumer.js

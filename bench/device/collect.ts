// Gathers what a lent-GPU run (bench/device/gpu-run.sh) brought back into one dated file beside
// the bench results: the ceilings (gpuCeilings.ts, one or more runs), the matmul variant sweep
// (abMatmul.ts's log) and the PyTorch reference ceilings (torchCeilings.py's output).
//
//   node dist/bench/device/collect.js --out bench/results/DATE-h100-ceilings.json \
//     --ceilings a.json,b.json --ab ab.log [--ab-norobust ab-norobust.log] [--torch torch.txt] [--machine machine.txt]

import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface VariantTime { shape: string; layout: string; variant: string; ms: number; gflops: number }

/** abMatmul.ts's log: a "MxNxK (layout):" header, then "  variant  ms ms  G GFLOP/s" lines. */
export function parseAbLog(text: string): VariantTime[] {
  const out: VariantTime[] = [];
  let shape = '';
  let layout = '';
  for (const line of text.split('\n')) {
    const clean = line.replace(/^\[[^\]]*\] /, '');
    const head = /^(\S+) \(([^)]+)\):$/.exec(clean);
    if (head) {
      [shape, layout] = [head[1]!, head[2]!];
      continue;
    }
    const row = /^\s+(\S+)\s+([\d.]+) ms\s+([\d.]+) GFLOP\/s$/.exec(clean);
    if (row && shape) out.push({ shape, layout, variant: row[1]!, ms: Number(row[2]), gflops: Number(row[3]) });
  }
  return out;
}

/** torchCeilings.py's lines: "torch_sgemm n=4096 2.662 ms 51.6 TFLOP/s", "torch_copy 256MiB 0.181 ms 2970 GB/s". */
export function parseTorch(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/torch_sgemm n=(\d+) [\d.]+ ms ([\d.]+) TFLOP\/s/g)) out[`sgemm_tflops_n${m[1]}`] = Number(m[2]);
  const copy = /torch_copy \S+ [\d.]+ ms (\d+) GB\/s/.exec(text);
  if (copy) out.copy_gbps = Number(copy[1]);
  return out;
}

interface CeilingRow { name: string; gbps?: number; fraction_of_copy?: number; fraction_of_shader_copy?: number }

/**
 * Each memory-bound row's rate over the run's vec4 WGSL copy, derived from the rows (runs of
 * gpuCeilings.ts before it reported this named the driver-copy ratio fraction_of_copy instead;
 * that ratio is dropped: the driver copy is a row of its own).
 */
export function withShaderCopyFractions(rows: CeilingRow[]): CeilingRow[] {
  const ref = rows.find((r) => r.name === 'wgsl_copy_vec4')?.gbps;
  return rows.map(({ fraction_of_copy: _driverRatio, ...r }) => {
    const copy = r.name === 'driver_copy' || r.name === 'wgsl_copy_vec4';
    return ref && r.gbps !== undefined && !copy ? { ...r, fraction_of_shader_copy: r.gbps / ref } : r;
  });
}

function main(): void {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      ceilings: { type: 'string' },
      ab: { type: 'string' },
      'ab-norobust': { type: 'string' },
      torch: { type: 'string' },
      machine: { type: 'string' },
    },
  });
  if (!values.out || !values.ceilings) throw new Error('usage: collect --out PATH --ceilings a.json[,b.json] [--ab LOG] [--ab-norobust LOG] [--torch TXT] [--machine TXT]');
  const runs = values.ceilings.split(',').map((p) => JSON.parse(readFileSync(p, 'utf8')) as { device: string; date: string; node: string; peak_tflops?: number; peak_gbps?: number; rows: unknown[] });
  const first = runs[0]!;
  const read = (p: string | undefined) => (p ? readFileSync(p, 'utf8') : undefined);
  const out = {
    device: first.device,
    machine: read(values.machine)?.trim().split('\n'),
    date: first.date,
    node: first.node,
    peak_tflops: first.peak_tflops,
    peak_gbps: first.peak_gbps,
    torch_reference: values.torch ? parseTorch(read(values.torch)!) : undefined,
    ceilings: runs.map((r) => ({ date: r.date, rows: withShaderCopyFractions(r.rows as CeilingRow[]) })),
    matmul_variants: values.ab ? parseAbLog(read(values.ab)!) : undefined,
    matmul_variants_without_robustness: values['ab-norobust'] ? parseAbLog(read(values['ab-norobust'])!) : undefined,
  };
  writeFileSync(values.out, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`wrote ${values.out}`);
}

if (process.argv[1]?.endsWith('collect.js')) main();

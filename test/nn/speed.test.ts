import { test } from 'vitest';
import { GPT } from '../../src/nn/gpt.js';
import { AdamW, clipGradNorm } from '../../src/nn/optim.js';
import { Generator } from '../../src/tensor/random/philox.js';
import { cpu, tensor, tidy, crossEntropy, backward } from '../../src/index.js';
test('speed', async () => {
  const cfg = { vocabSize: 4096, contextLength: 64, dModel: 128, nLayers: 4, nHeads: 4, dropout: 0 };
  const m = new GPT(cfg, { backend: cpu, generator: new Generator(1) });
  const opt = new AdamW(m, { lr: 1e-3 });
  const B = 16, T = 64;
  const ids = tensor(Array.from({ length: B * T }, (_, i) => (i * 7919) % 4096), [B, T], { dtype: 'i32', backend: cpu });
  const tg = tensor(Array.from({ length: B * T }, (_, i) => (i * 104729) % 4096), [B, T], { dtype: 'i32', backend: cpu });
  for (let s = 0; s < 4; s++) {
    const t0 = performance.now();
    const loss = tidy(() => { const l = crossEntropy(m.forward(ids).logits, tg); backward(l); return l.detach(); });
    const t1 = performance.now();
    clipGradNorm(m.parameters(), 1).dispose(); opt.step(); opt.zeroGrad();
    console.log('step', s, loss.itemSync().toFixed(3), (t1 - t0).toFixed(0), 'ms fwd+bwd', (performance.now() - t1).toFixed(0), 'ms opt', ((B * T) / ((performance.now() - t0) / 1000)).toFixed(0), 'tok/s');
    loss.dispose();
  }
});

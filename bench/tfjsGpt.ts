// The peer's GPT training step, written with tfjs ops: the architecture of src/nn/gpt.ts (token +
// position embeddings, pre-LN blocks with causal attention and a tanh-GELU MLP, tied LM head,
// softmax cross-entropy), trained with tf.variableGrads and tf.train.adam.

import type * as tfTypes from '@tensorflow/tfjs-core';

type TF = typeof tfTypes;
type T = tfTypes.Tensor;

export interface TfGptConfig {
  vocabSize: number;
  contextLength: number;
  dModel: number;
  nLayers: number;
  nHeads: number;
}

interface Block {
  ln1g: tfTypes.Variable; ln1b: tfTypes.Variable;
  attnW: tfTypes.Variable; attnB: tfTypes.Variable;
  projW: tfTypes.Variable; projB: tfTypes.Variable;
  ln2g: tfTypes.Variable; ln2b: tfTypes.Variable;
  fcW: tfTypes.Variable; fcB: tfTypes.Variable;
  mlpW: tfTypes.Variable; mlpB: tfTypes.Variable;
}

export class TfGpt {
  readonly wte: tfTypes.Variable;
  readonly wpe: tfTypes.Variable;
  readonly blocks: Block[];
  readonly lnfG: tfTypes.Variable;
  readonly lnfB: tfTypes.Variable;

  constructor(private readonly tf: TF, readonly config: TfGptConfig, seed = 1) {
    const { vocabSize: V, contextLength: Tc, dModel: d, nLayers: L } = config;
    let s = seed;
    const normal = (shape: number[], std: number) => tf.variable(tf.randomNormal(shape, 0, std, 'float32', s++));
    const ones = (n: number) => tf.variable(tf.ones([n]));
    const zeros = (n: number) => tf.variable(tf.zeros([n]));
    const projStd = 0.02 / Math.sqrt(2 * L);
    this.wte = normal([V, d], 0.02);
    this.wpe = normal([Tc, d], 0.02);
    this.blocks = Array.from({ length: L }, () => ({
      ln1g: ones(d), ln1b: zeros(d),
      attnW: normal([d, 3 * d], 0.02), attnB: zeros(3 * d),
      projW: normal([d, d], projStd), projB: zeros(d),
      ln2g: ones(d), ln2b: zeros(d),
      fcW: normal([d, 4 * d], 0.02), fcB: zeros(4 * d),
      mlpW: normal([4 * d, d], projStd), mlpB: zeros(d),
    }));
    this.lnfG = ones(d);
    this.lnfB = zeros(d);
  }

  variables(): tfTypes.Variable[] {
    return [this.wte, this.wpe, ...this.blocks.flatMap((b) => Object.values(b)), this.lnfG, this.lnfB];
  }

  private layerNorm(x: T, g: T, b: T): T {
    const { tf } = this;
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))), g), b);
  }

  /** GELU, tanh approximation (as GPT-2 and our GELU('tanh')). */
  private gelu(x: T): T {
    const { tf } = this;
    const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
  }

  /** x [B·T, d] → x + attn(ln_1(x)), then + mlp(ln_2(x)). */
  private block(x: T, blk: Block, B: number, Tn: number, causalBias: T): T {
    const { tf } = this;
    const { dModel: d, nHeads: H } = this.config;
    const Dh = d / H;
    const qkv = tf.add(tf.matMul(this.layerNorm(x, blk.ln1g, blk.ln1b), blk.attnW), blk.attnB);
    const heads = (t: T) => tf.transpose(tf.reshape(t, [B, Tn, H, Dh]), [0, 2, 1, 3]);
    const [q, k, v] = tf.split(qkv, 3, 1).map(heads);
    const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(Dh)), causalBias);
    const y = tf.reshape(tf.transpose(tf.matMul(tf.softmax(scores), v), [0, 2, 1, 3]), [B * Tn, d]);
    const a = tf.add(x, tf.add(tf.matMul(y, blk.projW), blk.projB));
    const h = this.gelu(tf.add(tf.matMul(this.layerNorm(a, blk.ln2g, blk.ln2b), blk.fcW), blk.fcB));
    return tf.add(a, tf.add(tf.matMul(h, blk.mlpW), blk.mlpB));
  }

  /** Mean cross-entropy of next-token logits; ids i32 [B·T], labels one-hot [B·T, V]. */
  loss(ids: T, labels: T, B: number, Tn: number, causalBias: T): tfTypes.Scalar {
    const { tf } = this;
    const d = this.config.dModel;
    const pos = tf.slice(this.wpe, [0, 0], [Tn, d]);
    let x = tf.reshape(tf.add(tf.reshape(tf.gather(this.wte, ids), [B, Tn, d]), pos), [B * Tn, d]);
    for (const blk of this.blocks) x = this.block(x, blk, B, Tn, causalBias);
    const logits = tf.matMul(this.layerNorm(x, this.lnfG, this.lnfB), this.wte, false, true);
    return tf.losses.softmaxCrossEntropy(labels, logits) as tfTypes.Scalar;
  }
}

/** [T, T] additive causal mask: 0 on and below the diagonal, −1e9 above. */
export function causalBias(tf: TF, Tn: number): T {
  const v = new Float32Array(Tn * Tn);
  for (let i = 0; i < Tn; i++) for (let j = i + 1; j < Tn; j++) v[i * Tn + j] = -1e9;
  return tf.tensor2d(v, [Tn, Tn]);
}

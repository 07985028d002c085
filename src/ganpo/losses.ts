// Offline preference losses (DPO, IPO, hinge, robust/label-smoothed DPO, SimPO) on sequence
// log-probabilities, with the reward metrics named as in TRL. See GANPO.md §2.

import type { Tensor } from '../tensor/index.js';
import { div, logSigmoid, mean, mul, neg, relu, square, sub } from '../tensor/index.js';

export type BaseLossKind = 'dpo' | 'ipo' | 'hinge' | 'robust' | 'simpo';

export const BASE_LOSSES: readonly BaseLossKind[] = ['dpo', 'ipo', 'hinge', 'robust', 'simpo'];

export interface BaseLossConfig {
  kind: BaseLossKind;
  /** β: 0.1 for the DPO family, 2 for SimPO by default. */
  beta: number;
  /** ε of the robust (label-smoothed) loss; 0 is plain DPO. */
  labelSmoothing: number;
  /** SimPO's target margin γ (absolute, in reward units). */
  simpoGamma: number;
}

export function defaultBaseLoss(kind: BaseLossKind): BaseLossConfig {
  return kind === 'simpo'
    ? { kind, beta: 2, labelSmoothing: 0, simpoGamma: 1 }
    : { kind, beta: 0.1, labelSmoothing: kind === 'robust' ? 0.1 : 0, simpoGamma: 0 };
}

/** Summed response log-probs and response lengths of each pair, [B] each. */
export interface PairLogProbs {
  policyChosen: Tensor;
  policyRejected: Tensor;
  /** Reference log-probs; required by every loss but SimPO. */
  refChosen?: Tensor;
  refRejected?: Tensor;
  chosenLength: Tensor;
  rejectedLength: Tensor;
}

export interface BaseLossOutput {
  /** Scalar loss (batch mean). */
  loss: Tensor;
  /** Implicit rewards [B]: β·(log π − log π_ref) for the DPO family, β·mean log π for SimPO. */
  chosenRewards: Tensor;
  rejectedRewards: Tensor;
}

function requireRef(cfg: BaseLossConfig, lp: PairLogProbs): { refChosen: Tensor; refRejected: Tensor } {
  if (!lp.refChosen || !lp.refRejected) throw new Error(`${cfg.kind} loss needs reference log-probs (refChosen, refRejected)`);
  return { refChosen: lp.refChosen, refRejected: lp.refRejected };
}

/** The base preference loss of GANPO.md §2. */
export function preferenceLoss(cfg: BaseLossConfig, lp: PairLogProbs): BaseLossOutput {
  const { beta } = cfg;
  if (!(beta > 0)) throw new Error(`preference loss: beta must be > 0, got ${beta}`);
  if (cfg.kind === 'simpo') {
    // r(y) = β/|y| · log π(y|x); L = −log σ(r_w − r_l − γ)
    const rw = mul(div(lp.policyChosen, lp.chosenLength), beta);
    const rl = mul(div(lp.policyRejected, lp.rejectedLength), beta);
    const loss = neg(mean(logSigmoid(sub(sub(rw, rl), cfg.simpoGamma))));
    return { loss, chosenRewards: rw, rejectedRewards: rl };
  }
  const { refChosen, refRejected } = requireRef(cfg, lp);
  const dw = sub(lp.policyChosen, refChosen);
  const dl = sub(lp.policyRejected, refRejected);
  const chosenRewards = mul(dw, beta);
  const rejectedRewards = mul(dl, beta);
  let loss: Tensor;
  switch (cfg.kind) {
    case 'dpo':
    case 'robust': {
      const z = mul(sub(dw, dl), beta);
      const eps = cfg.kind === 'robust' ? cfg.labelSmoothing : 0;
      if (!(eps >= 0 && eps < 0.5)) throw new Error(`robust loss: labelSmoothing must be in [0, 0.5), got ${eps}`);
      // −(1−ε) log σ(βz) − ε log σ(−βz)
      const main = mul(logSigmoid(z), -(1 - eps));
      loss = eps > 0 ? mean(sub(main, mul(logSigmoid(neg(z)), eps))) : mean(main);
      break;
    }
    case 'ipo': {
      // Δ on length-averaged log-probs; L = ((Δ_w − Δ_l) − 1/(2β))²
      const z = sub(div(dw, lp.chosenLength), div(dl, lp.rejectedLength));
      loss = mean(square(sub(z, 1 / (2 * beta))));
      break;
    }
    case 'hinge':
      loss = mean(relu(sub(1, mul(sub(dw, dl), beta))));
      break;
  }
  return { loss, chosenRewards, rejectedRewards };
}

# Golden values for one GANPO step (docs: GANPO.md §4-6), computed by a small PyTorch
# re-implementation that shares no code with the TypeScript one; writes the fixtures under
# scripts/golden/fixtures/ that test/ganpo/golden.test.ts checks. Run: /usr/bin/python3 scripts/golden/ganpo_step.py
import copy
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_default_dtype(torch.float32)
torch.set_num_threads(1)  # deterministic reductions

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")

GPT_CFG = dict(vocab_size=32, n_positions=12, n_embd=16, n_layer=2, n_head=2)
CRITIC_CFG = dict(d_c=8, n_heads=2, n_layers=2, max_len=12)
HP = dict(beta=0.1, lam=1.0, momentum=0.9, policy_lr=1e-2, critic_lr=5e-3, betas=[0.9, 0.999], eps=1e-8,
          policy_weight_decay=0.0, critic_weight_decay=0.01, max_grad_norm=1.0, pad_id=0)

# Three pairs with different prompt and response lengths (right padding to the longest row).
BATCH = [
    dict(prompt=[5, 9, 3], chosen=[12, 14, 1], rejected=[20, 1]),
    dict(prompt=[7, 2], chosen=[13, 1], rejected=[22, 25, 27, 1]),
    dict(prompt=[4, 8, 6, 10], chosen=[15, 16, 17, 18, 1], rejected=[21, 1]),
]


# ---- GPT-2 with Hugging Face semantics and names (Conv1D weights are [in, out]) ----

class Conv1D(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_in, n_out) * 0.02)
        self.bias = nn.Parameter(torch.randn(n_out) * 0.02)

    def forward(self, x):
        return x @ self.weight + self.bias


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def perturbed_layernorm(d):
    ln = nn.LayerNorm(d, eps=1e-5)
    with torch.no_grad():  # not ones/zeros, so a swapped weight and bias would show
        ln.weight.add_(torch.randn(d) * 0.1)
        ln.bias.add_(torch.randn(d) * 0.02)
    return ln


class Attention(nn.Module):
    def __init__(self, d, n_head):
        super().__init__()
        self.n_head = n_head
        self.c_attn = Conv1D(d, 3 * d)
        self.c_proj = Conv1D(d, d)

    def forward(self, x, attention_mask):
        B, T, d = x.shape
        H, Dh = self.n_head, d // self.n_head
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = (t.view(B, T, H, Dh).transpose(1, 2) for t in (q, k, v))
        w = q @ k.transpose(-1, -2) / math.sqrt(Dh)
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
        min_value = torch.finfo(w.dtype).min
        w = torch.where(causal, w, torch.tensor(min_value, dtype=w.dtype))
        # HF: the 0/1 mask becomes an additive (1 - mask) * finfo.min over the keys.
        w = w + (1.0 - attention_mask[:, None, None, :]) * min_value
        y = F.softmax(w, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(B, T, d))


class MLP(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.c_fc = Conv1D(d, 4 * d)
        self.c_proj = Conv1D(4 * d, d)

    def forward(self, x):
        return self.c_proj(gelu_new(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, d, n_head):
        super().__init__()
        self.ln_1 = perturbed_layernorm(d)
        self.attn = Attention(d, n_head)
        self.ln_2 = perturbed_layernorm(d)
        self.mlp = MLP(d)

    def forward(self, x, mask):
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["n_embd"]
        self.wte = nn.Embedding(c["vocab_size"], d)
        self.wpe = nn.Embedding(c["n_positions"], d)
        with torch.no_grad():
            self.wte.weight.normal_(0, 0.02)
            self.wpe.weight.normal_(0, 0.02)
        self.h = nn.ModuleList([Block(d, c["n_head"]) for _ in range(c["n_layer"])])
        self.ln_f = perturbed_layernorm(d)


class GPT2LMHead(nn.Module):
    """Returns (logits, last hidden state after ln_f); the LM head is tied to wte."""

    def __init__(self, c):
        super().__init__()
        self.transformer = GPT2Model(c)

    def forward(self, ids, mask):
        t = self.transformer
        pos = torch.arange(ids.shape[1])
        x = t.wte(ids) + t.wpe(pos)[None]
        for block in t.h:
            x = block(x, mask)
        hidden = t.ln_f(x)
        return hidden @ t.wte.weight.T, hidden


# ---- The critic of GANPO.md §4 (PyTorch module names) ----

def sn_linear(n_in, n_out):
    lin = nn.Linear(n_in, n_out)
    nn.init.xavier_uniform_(lin.weight)
    with torch.no_grad():
        lin.bias.normal_(0, 0.02)  # the reference inits zeros; nonzero here so bias handling shows
    return nn.utils.spectral_norm(lin)


class Critic(nn.Module):
    def __init__(self, d_in, d_c, n_heads, n_layers, max_len):
        super().__init__()
        self.project_in = sn_linear(d_in, d_c)
        self.pos_embedding = nn.Parameter(torch.randn(1, max_len, d_c) * 0.02)
        layer = nn.TransformerEncoderLayer(d_model=d_c, nhead=n_heads, dim_feedforward=4 * d_c, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        for name, p in self.transformer.named_parameters():
            with torch.no_grad():
                if p.dim() == 2:
                    nn.init.xavier_uniform_(p)
                elif name.endswith("bias"):
                    p.normal_(0, 0.02)
                else:  # LayerNorm weights
                    p.add_(torch.randn_like(p) * 0.1)
        self.head = nn.Sequential(sn_linear(d_c, d_c), nn.GELU(), sn_linear(d_c, 1))
        self.max_len = max_len

    def forward(self, h):
        T = min(h.shape[1], self.max_len)
        x = self.project_in(h[:, :T]) + self.pos_embedding[:, :T]
        x = self.transformer(x)
        return self.head(x.mean(dim=1)).squeeze(-1)  # pool 'all': every position, padding included


# ---- Data exactly as collatePairs lays it out (chosen rows first) ----

def collate(pairs, pad_id):
    rows = [(p["prompt"], p["chosen"]) for p in pairs] + [(p["prompt"], p["rejected"]) for p in pairs]
    T = max(len(a) + len(b) for a, b in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), T)
    targets = torch.full((len(rows), T), -1, dtype=torch.long)
    for r, (prompt, resp) in enumerate(rows):
        seq = prompt + resp
        ids[r, : len(seq)] = torch.tensor(seq)
        mask[r, : len(seq)] = 1
        for j, tok in enumerate(resp):
            targets[r, len(prompt) + j - 1] = tok  # logit at t-1 predicts token t
    return ids, mask, targets


def response_logps(logits, targets):
    logp = F.log_softmax(logits, dim=-1)
    valid = targets >= 0
    picked = logp.gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)
    return (picked * valid).sum(dim=1)


def sp(x):
    return F.softplus(x).mean()


def main():
    policy = GPT2LMHead(GPT_CFG)
    critics = {"chosen": Critic(GPT_CFG["n_embd"], **CRITIC_CFG), "rejected": Critic(GPT_CFG["n_embd"], **CRITIC_CFG)}
    reference = copy.deepcopy(policy).eval()
    for p in reference.parameters():
        p.requires_grad_(False)

    tensors = {}
    for n, t in policy.state_dict().items():
        tensors[f"policy.{n}"] = t.clone()
    for k, c in critics.items():
        for n, t in c.state_dict().items():
            tensors[f"critic.{k}.{n}"] = t.clone()

    ids, mask, targets = collate(BATCH, HP["pad_id"])
    B = len(BATCH)
    critic_params = [p for c in critics.values() for p in c.parameters()]
    critic_opt = torch.optim.AdamW(critic_params, lr=HP["critic_lr"], betas=tuple(HP["betas"]), eps=HP["eps"],
                                   weight_decay=HP["critic_weight_decay"])
    policy_opt = torch.optim.AdamW(policy.parameters(), lr=HP["policy_lr"], betas=tuple(HP["betas"]), eps=HP["eps"],
                                   weight_decay=HP["policy_weight_decay"])

    # GANPO.md §6, one micro-batch (gradient accumulation 1).
    logits, hidden = policy(ids, mask)
    lp = response_logps(logits, targets)
    with torch.no_grad():
        ref_logits, ref_hidden = reference(ids, mask)
        ref_lp = response_logps(ref_logits, targets)
    z = (lp[:B] - ref_lp[:B]) - (lp[B:] - ref_lp[B:])
    base_loss = -F.logsigmoid(HP["beta"] * z).mean()

    # Critics in training mode on detached policy states; each forward runs one power iteration.
    Dc, Dr = critics["chosen"], critics["rejected"]
    Dc.train()
    Dr.train()
    pol = hidden.detach()
    a, b, c = Dc(pol[:B]), Dc(ref_hidden[:B]), Dc(ref_hidden[B:])
    a2, b2, c2 = Dr(pol[B:]), Dr(ref_hidden[:B]), Dr(ref_hidden[B:])
    # First step: the running means are the batch means (no momentum yet).
    m = [s.detach().mean() for s in (a, b, c, a2, b2, c2)]
    ma, mb, mc, ma2, mb2, mc2 = m
    L_Dc = 0.25 * (sp(-(b - ma)) + sp(a - mb) + sp(-(a - mc)) + sp(c - ma))
    L_Dr = 0.25 * (sp(-(c2 - ma2)) + sp(a2 - mc2) + sp(-(a2 - mb2)) + sp(b2 - ma2))
    critic_opt.zero_grad()
    (L_Dc + L_Dr).backward()
    for k, crit in critics.items():
        for n, p in crit.named_parameters():
            tensors[f"grad.critic.{k}.{n}"] = p.grad.clone()
    critic_opt.step()
    critic_opt.zero_grad()

    # Critics frozen and in eval mode (stored u, v; no iteration): the generator loss.
    for crit in (Dc, Dr):
        crit.eval()
        for p in crit.parameters():
            p.requires_grad_(False)
    L_adv = 0.5 * (sp(-(Dc(hidden[:B]) - mb)) + sp(-(Dr(hidden[B:]) - mc2)))
    loss = base_loss + HP["lam"] * L_adv
    policy_opt.zero_grad()
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), HP["max_grad_norm"])
    for n, p in policy.named_parameters():
        tensors[f"grad.policy.{n}"] = p.grad.clone()  # after clipping: what AdamW sees
    policy_opt.step()

    max_update = {}
    for n, t in policy.state_dict().items():
        tensors[f"after.policy.{n}"] = t.clone()
        max_update[f"policy.{n}"] = (t - tensors[f"policy.{n}"]).abs().max().item()
    for k, crit in critics.items():
        for n, t in crit.state_dict().items():
            tensors[f"after.critic.{k}.{n}"] = t.clone()
            max_update[f"critic.{k}.{n}"] = (t - tensors[f"critic.{k}.{n}"]).abs().max().item()

    scalars = {
        "base_loss": base_loss.item(),
        "critic_loss_chosen": L_Dc.item(),
        "critic_loss_rejected": L_Dr.item(),
        "running_means": {name: v.item() for name, v in zip(["m_a", "m_b", "m_c", "m_a'", "m_b'", "m_c'"], m)},
        "generator_loss": L_adv.item(),
        "loss": loss.item(),
        "grad_norm": grad_norm.item(),
        "logps_chosen": lp[:B].mean().item(),
        "logps_rejected": lp[B:].mean().item(),
    }
    meta = {
        "torch": torch.__version__,
        "gpt": GPT_CFG,
        "critic": CRITIC_CFG,
        "hyperparameters": HP,
        "batch": BATCH,
        "scalars": scalars,
        "max_abs_update": max_update,
    }
    os.makedirs(OUT, exist_ok=True)
    write_safetensors(os.path.join(OUT, "ganpo_step.safetensors"), tensors)
    with open(os.path.join(OUT, "ganpo_step.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(json.dumps(scalars, indent=2))


def write_safetensors(path, tensors):
    """Minimal F32 safetensors writer (the safetensors package is not needed): header, then data by name."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        data = tensors[name].detach().contiguous().to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for blob in blobs:
            f.write(blob)


if __name__ == "__main__":
    main()

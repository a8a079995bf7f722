"""Audio metrics, all on waveforms ``[N, T]``: classifier Fréchet distance, conditional accuracy,
KL between per-class posteriors, pitch accuracy (YIN), frame-energy KS test and an energy guard."""

from __future__ import annotations

import math

import numpy as np
import torch

from panflow import frechet_distance

from .classifier import AudioCNN, features, posteriors


def classifier_metrics(net: AudioCNN, real: torch.Tensor, real_y: torch.Tensor | None, fake: torch.Tensor,
                       fake_y: torch.Tensor | None, num_classes: int) -> dict[str, float]:
    """``fd`` on the classifier's features; with labels, ``cond_acc`` (argmax = intended class) and
    ``class_kl`` = mean over classes of KL(mean real posterior ‖ mean generated posterior)."""
    out = {"fd": frechet_distance(features(net, real), features(net, fake))}
    if fake_y is not None and real_y is not None:
        pf, pr = posteriors(net, fake).double(), posteriors(net, real).double()
        out["cond_acc"] = float((pf.argmax(1) == fake_y).double().mean())
        kls = []
        for k in range(num_classes):
            if (real_y == k).any() and (fake_y == k).any():
                p, q = pr[real_y == k].mean(0).clamp_min(1e-6), pf[fake_y == k].mean(0).clamp_min(1e-6)
                kls.append(float((p * (p / q).log()).sum()))
        out["class_kl"] = float(np.mean(kls)) if kls else float("nan")
    return out


def yin_pitch(wave: torch.Tensor, sr: int, fmin: float = 80.0, fmax: float = 1000.0, frame: int = 1024,
              hop: int = 256, threshold: float = 0.15) -> torch.Tensor:
    """f0 in Hz ``[N]`` per clip: the YIN estimator (de Cheveigné & Kawahara 2002) per frame —
    cumulative-mean-normalised difference, first dip under ``threshold``, parabolic refinement —
    then the median over frames within 10 dB of the clip's loudest. NaN when nothing is voiced."""
    fr = wave.float().unfold(-1, frame, hop)                       # [N, F, frame]
    w = frame // 2
    tau_max, tau_min = min(int(sr / fmin), w - 1), max(2, int(sr / fmax))
    d = torch.stack([((fr[..., :w] - fr[..., t:t + w]) ** 2).sum(-1) for t in range(tau_max + 1)], -1)
    cum = torch.cumsum(d[..., 1:], -1) / torch.arange(1, tau_max + 1)
    dn = torch.cat([torch.ones_like(d[..., :1]), d[..., 1:] / cum.clamp_min(1e-12)], -1)
    dn[..., :tau_min] = 2.0
    below = dn < threshold
    tau = torch.where(below.any(-1), below.float().argmax(-1), dn.argmin(-1))
    for _ in range(tau_max):                                      # walk down to the dip's minimum
        nxt = (tau + 1).clamp(max=tau_max)
        better = dn.gather(-1, nxt[..., None])[..., 0] < dn.gather(-1, tau[..., None])[..., 0]
        if not better.any():
            break
        tau = torch.where(better, nxt, tau)
    a, b, c = (dn.gather(-1, i[..., None])[..., 0] for i in ((tau - 1).clamp(min=0), tau, (tau + 1).clamp(max=tau_max)))
    den = a - 2 * b + c
    off = torch.where(den.abs() > 1e-12, 0.5 * (a - c) / den, torch.zeros_like(den)).clamp(-1, 1)
    f0 = sr / (tau.float() + off)
    energy = fr.pow(2).mean(-1)
    voiced = energy > 0.1 * energy.amax(-1, keepdim=True).clamp_min(1e-12)
    return torch.where(voiced, f0, torch.full_like(f0, math.nan)).nanmedian(-1).values


def pitch_accuracy(wave: torch.Tensor, target_hz: torch.Tensor, sr: int, cents: float = 50.0) -> dict[str, float]:
    """Fraction of clips whose YIN f0 is within ``cents`` of the intended pitch (NaN f0 counts as a miss)."""
    est = yin_pitch(wave, sr)
    err = (1200 * torch.log2(est / target_hz)).abs()
    err = torch.where(torch.isnan(err), torch.full_like(err, math.inf), err)
    return {"pitch_acc": float((err < cents).double().mean()), "pitch_cents_median": float(err.median())}


def frame_log_energy(wave: torch.Tensor, frame: int = 256, floor_db: float = -60.0) -> torch.Tensor:
    """Mean-square energy (dB full scale) of non-overlapping frames, all clips pooled: ``[N · frames]``.
    Frames below ``floor_db`` count as silence at ``floor_db``: digital zeros (padding) and
    Griffin-Lim's low-level reconstruction noise are the same silence to a listener."""
    fr = wave[:, : wave.shape[1] // frame * frame].reshape(wave.shape[0], -1, frame)
    return (10 * torch.log10(fr.pow(2).mean(-1).clamp_min(10 ** (floor_db / 10)))).flatten()


def energy_metrics(real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    """Two-sample KS test of frame energies (generated vs real) and the guard quantities: RMS ratio
    and the fraction of near-silent clips (RMS < 1e-3), so a silent or constant model cannot pass."""
    from scipy.stats import ks_2samp

    er, ef = frame_log_energy(real).numpy(), frame_log_energy(fake).numpy()
    ks = ks_2samp(er, ef)
    rms_r, rms_f = real.pow(2).mean(1).sqrt(), fake.pow(2).mean(1).sqrt()
    return {"energy_ks": float(ks.statistic), "energy_ks_p": float(ks.pvalue),
            "rms_ratio": float(rms_f.mean() / rms_r.mean().clamp_min(1e-12)),
            "silent_frac": float((rms_f < 1e-3).double().mean())}


def mel_energy_ks(real, gen, seed: int = 0) -> dict[str, float]:
    """Registered metric on raw log-mel ``Samples``: KS test of per-frame log mel energy
    (log-sum-exp over mel bins), generated vs real; needs no inversion."""
    from scipy.stats import ks_2samp

    er = torch.logsumexp(real.x[:, 0], dim=1).flatten().numpy()
    eg = torch.logsumexp(gen.x[:, 0], dim=1).flatten().numpy()
    ks = ks_2samp(er, eg)
    return {"mel_energy_ks": float(ks.statistic), "mel_energy_ks_p": float(ks.pvalue)}

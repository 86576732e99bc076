"""The Lightning module: one OneVAE trained on the continuous path, the discrete path, or both.

Manual optimisation (an autoencoder optimiser and, once the adversarial term starts, a discriminator
optimiser). Every random choice is a function of ``(seed, step)``, so resuming gives the same run.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from ..checkpoints.detect import TRAINING_CONFIG_KEY
from ..errors import OneVAEError
from ..eval.metrics import codebook_usage
from ..losses import ReconstructionLoss, build_discriminator, discriminator_loss
from ..model import OneVAE
from ..nn.layers import ResidualBlock
from ..quantizers.factory import auxiliary_loss
from .checkpointing import TRAIN_CONFIG_KEY
from .config import TrainConfig
from .ema import EMA
from .schedule import discrete_share, plan_step
from .validation import summarise_validation, validate_batch

FLAT_STD = 1e-3  # a reconstruction whose per-frame std is below this is "flat colour"
FLAT_INPUT_STD = 0.05  # ... while the input's is above this (a flat input may well give a flat output)
# The posterior noise of step s on rank r is seeded with seed * NOISE_SEED_STRIDE + s * NOISE_STEP_STRIDE + r:
# two primes, so that different (seed, step, rank) triples do not collide in practice.
NOISE_SEED_STRIDE = 7919
NOISE_STEP_STRIDE = 1009


class OneVAETrainingModule(L.LightningModule):
    def __init__(self, config: TrainConfig, model: OneVAE) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.cfg = config
        self.vae = model
        self._apply_freeze(config.trainer.freeze)
        if config.trainer.activation_checkpointing:
            for module in self.vae.modules():
                if isinstance(module, ResidualBlock):
                    module.activation_checkpointing = True
        self.ema = EMA(self.vae, config.ema.decay, config.ema.warmup) if config.ema.enabled else None
        # not a registered submodule: the frozen VGG16 of the perceptual term stays out of the checkpoints
        self.__dict__["reconstruction_loss"] = ReconstructionLoss.from_config(config.loss)
        self.perceptual_message = self.reconstruction_loss.perceptual_message
        # g_loss_weight 0 turns the adversarial term off: no discriminator is built
        self.discriminator = build_discriminator(config.loss.discriminator) if config.loss.g_loss_weight > 0 else None
        self.nonfinite_streak = 0
        self.flat_streak: int | torch.Tensor = 0  # steps of flat-colour output in a row, counted on the device
        self.longest_flat_streak: int | torch.Tensor = 0  # since the last check
        self.skipped_steps = 0

    # ------------------------------------------------------------------------------------ setup helpers
    def _apply_freeze(self, prefixes: list[str]) -> None:
        names = [name for name, _ in self.vae.named_parameters()]
        for prefix in prefixes:
            if not any(name.startswith(prefix) for name in names):
                raise OneVAEError(f"trainer.freeze: no parameter name starts with {prefix!r} (e.g. model.encoder, model.decoder, quant_conv)")
        for name, p in self.vae.named_parameters():
            if any(name.startswith(prefix) for prefix in prefixes):
                p.requires_grad_(False)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.vae.parameters() if p.requires_grad]

    def configure_optimizers(self) -> tuple[list[torch.optim.Optimizer], list[dict[str, Any]]]:
        o = self.cfg.optim
        ae = torch.optim.AdamW(self.trainable_parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(ae, self._lr_factor)
        optimizers = [ae]
        if self.discriminator is not None:
            lr = o.disc_lr or o.lr
            optimizers.append(torch.optim.AdamW(self.discriminator.parameters(), lr=lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay))
        return optimizers, [{"scheduler": schedule, "interval": "step"}]

    def _lr_factor(self, step: int) -> float:
        o = self.cfg.optim
        total = max(1, o.schedule_steps or self.cfg.trainer.max_steps)
        if o.warmup_steps and step < o.warmup_steps:
            return (step + 1) / o.warmup_steps
        if o.schedule == "cosine":
            progress = min(1.0, (step - o.warmup_steps) / max(1, total - o.warmup_steps))
            return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0

    # ------------------------------------------------------------------------------------------ training
    def _posterior_noise(self, step: int) -> torch.Generator | None:
        """The generator of the continuous path's posterior sample (KL-regularised VAEs only): a function of
        (seed, step, rank), so that a resumed run draws the same noise."""
        if self.cfg.loss.kl_weight <= 0:
            return None
        seed = self.cfg.seed * NOISE_SEED_STRIDE + step * NOISE_STEP_STRIDE + self.global_rank
        return torch.Generator(device="cpu").manual_seed(seed)

    def on_fit_start(self) -> None:
        self.reconstruction_loss.to(self.device)

    def adversarial_active(self, step: int) -> bool:
        return self.reconstruction_loss.adversarial_active(step, self.discriminator)

    def training_step(self, video: torch.Tensor, batch_idx: int) -> None:
        # video: (B, 3, T, H, W) in [-1, 1]
        step = self.global_step
        optimizers = self.optimizers()
        opt_ae = optimizers[0] if isinstance(optimizers, list) else optimizers
        out = self.vae(video, plan_step(self.cfg.schedule, step, self.cfg.seed), posterior_noise=self._posterior_noise(step))
        continuous_stage = self.cfg.stage == "continuous"
        last_layer = self.vae.decoder_last_layer
        total = video.new_zeros(())
        logs: dict[str, torch.Tensor] = {}
        log_now = self._logging_step()
        for path in out.paths:
            term, term_logs = self.reconstruction_loss(
                video, path.recon, step, discriminator=self.discriminator,
                last_layer_weight=last_layer if last_layer.requires_grad else None,
                mu=out.latents.to_list() if continuous_stage else None,
                logvar=out.logvars.to_list() if continuous_stage else None,
            )
            total = total + path.plan.weight * term
            aux = auxiliary_loss(self.vae.quantizer) if path.tokens is not None else None  # VQ/LFQ only; FSQ has none
            if aux is not None:
                total = total + path.plan.weight * aux
                logs["loss/quantizer_aux"] = aux.detach()
            for key, value in term_logs.items():
                if key != "loss/total":
                    logs[f"{key}_{path.plan.path}"] = value
            if path.tokens is not None and log_now:  # torch.unique waits for the GPU: only on steps the logger keeps
                for k, usage in enumerate(codebook_usage(path.tokens, self.vae.config.vocab_size)):
                    logs[f"codebook/batch_usage/token{k}"] = torch.tensor(usage)
        logs["loss/total"] = total.detach()
        logs["schedule/discrete_share"] = torch.tensor(discrete_share(self.cfg.schedule, step))
        opt_ae.zero_grad(set_to_none=True)
        self.manual_backward(total)  # a non-finite loss gives non-finite gradients, which are dropped below
        grad_norm = self._clip(opt_ae)
        loss_finite, grad_finite = self._all_finite(total, grad_norm)  # the step's one wait for the GPU
        if not (loss_finite and grad_finite):
            opt_ae.zero_grad(set_to_none=True)
            self._skip_step(opt_ae, step, "loss" if not loss_finite else "gradient")
            return
        self.nonfinite_streak = 0
        opt_ae.step()
        self.lr_schedulers().step()
        if self.adversarial_active(step):
            logs.update(self._discriminator_step(optimizers[1], video, out.recon.detach()))
        if self.ema is not None:
            self.ema.update(self.vae)
        self._check_collapse(video, out.recon, check_now=log_now)
        logs["grad_norm"] = grad_norm.detach()
        logs["lr"] = torch.tensor(opt_ae.param_groups[0]["lr"])
        self.log_dict({f"train/{k}": v.float() for k, v in logs.items()}, on_step=True, prog_bar=False, sync_dist=False)
        self.log("loss", logs["loss/total"].float(), prog_bar=True, on_step=True, logger=False)

    def _discriminator_step(self, opt_d, video: torch.Tensor, recon: torch.Tensor) -> dict[str, torch.Tensor]:
        loss_cfg = self.cfg.loss
        d_loss, logs = discriminator_loss(self.discriminator, video, recon, self.global_step, loss_cfg.disc_start, loss_cfg.disc_loss)
        if not d_loss.requires_grad or not self._step_is_finite(d_loss):
            return {}
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        if self.cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.discriminator.parameters(), self.cfg.optim.grad_clip)
        opt_d.optimizer.step()  # the raw optimiser: Lightning's step counter counts autoencoder steps only
        return logs

    def _clip(self, opt) -> torch.Tensor:
        params = self.trainable_parameters()
        limit = self.cfg.optim.grad_clip if self.cfg.optim.grad_clip > 0 else float("inf")
        return torch.nn.utils.clip_grad_norm_(params, limit)

    def _step_is_finite(self, value: torch.Tensor) -> bool:
        return self._all_finite(value)[0]

    def _all_finite(self, *values: torch.Tensor) -> list[bool]:
        """Whether each value is finite everywhere: one wait for the device for all of them, agreed across ranks."""
        flags = torch.stack([torch.isfinite(v).all() for v in values]).tolist()
        if self._trainer is None:
            return flags
        return [self.trainer.strategy.reduce_boolean_decision(bool(f), all=True) for f in flags]

    def _logging_step(self) -> bool:
        """Whether Lightning's logger records this step's values (every trainer.log_every_n_steps); values that
        cost a wait for the GPU are computed only then."""
        connector = getattr(self._trainer, "_logger_connector", None)
        return bool(getattr(connector, "should_update_logs", True))

    def _skip_step(self, opt, step: int, what: str) -> None:
        self.nonfinite_streak += 1
        self.skipped_steps += 1
        self.log("train/skipped_steps", float(self.skipped_steps), on_step=True)
        if self.cfg.trainer.nonfinite == "stop" or self.nonfinite_streak > self.cfg.trainer.max_nonfinite:
            raise OneVAEError(
                f"training stopped at step {step}: non-finite {what} ({self.nonfinite_streak} step(s) in a row). "
                "Lower optim.lr, keep optim.grad_clip on, or train in 32-true precision; the last checkpoint is intact."
            )
        # still count the step (AdamW leaves parameters without gradients untouched), so schedules and the
        # data position stay aligned with the step number
        opt.zero_grad(set_to_none=True)
        opt.step()
        self.lr_schedulers().step()

    def _check_collapse(self, video: torch.Tensor, recon: torch.Tensor, check_now: bool = True) -> None:
        """Counts steps of flat-colour output in a row on the device, without waiting for it, and stops training
        on a ``check_now`` step (a logging step) if a run of ``collapse_patience`` such steps came since the last one."""
        recon_std = recon.detach().float().std(dim=(1, 3, 4)).mean()
        input_std = video.detach().float().std(dim=(1, 3, 4)).mean()
        flat = (recon_std < FLAT_STD) & (input_std > FLAT_INPUT_STD)
        self.flat_streak = (self.flat_streak + 1) * flat
        self.longest_flat_streak = self.flat_streak.clamp(min=self.longest_flat_streak)  # an int or a tensor: no copy to the GPU
        if not check_now:
            return
        longest, self.longest_flat_streak = int(self.longest_flat_streak), 0
        if longest >= self.cfg.trainer.collapse_patience:
            raise OneVAEError(
                f"training stopped at step {self.global_step}: reconstructions collapsed to flat colours for "
                f"{longest} steps. Lower optim.lr or the adversarial weight, or start the adversarial term later."
            )

    # ------------------------------------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        self._val_outputs: list[dict[str, Any]] = []
        self._ema_swapped = self.ema is not None and self.cfg.ema.validate_with_ema
        if self._ema_swapped:
            self.ema.swap_in(self.vae)

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self._val_outputs.append(validate_batch(self, batch, batch_idx))

    def on_validation_epoch_end(self) -> None:
        summarise_validation(self, self._val_outputs)
        if self._ema_swapped:
            self.ema.swap_out(self.vae)
            self._ema_swapped = False

    # ------------------------------------------------------------------------------------------ checkpoint
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[TRAINING_CONFIG_KEY] = self.vae.config.to_dict()
        checkpoint[TRAIN_CONFIG_KEY] = self.cfg.to_dict()
        checkpoint["onevae_counters"] = {"skipped_steps": self.skipped_steps, "nonfinite_streak": self.nonfinite_streak, "flat_streak": int(self.flat_streak)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        counters = checkpoint.get("onevae_counters", {})
        self.skipped_steps = int(counters.get("skipped_steps", 0))
        self.nonfinite_streak = int(counters.get("nonfinite_streak", 0))
        self.flat_streak = int(counters.get("flat_streak", 0))
        self._apply_optimizer_config(checkpoint)

    def _apply_optimizer_config(self, checkpoint: dict[str, Any]) -> None:
        """Put this config's optimizer values (optim.lr, betas, eps, weight_decay, disc_lr) into the optimizer
        and scheduler states about to be restored, so that a run resumed with edited values trains with them
        (Lightning restores the checkpoint's, which would silently keep the old learning rate). The schedule's
        shape (warm-up, cosine) is this config's anyway: it is a function of the step."""
        o = self.cfg.optim
        schedulers = checkpoint.get("lr_schedulers") or []
        step = int(schedulers[0].get("last_epoch", 0)) if schedulers else int(checkpoint.get("global_step", 0))
        rates = [o.lr] + ([o.disc_lr or o.lr] if self.discriminator is not None else [])
        for state, lr, scheduled in zip(checkpoint.get("optimizer_states") or [], rates, (True, False)):
            for group in state.get("param_groups", []):
                group.update(betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)
                group["lr"] = lr * self._lr_factor(step) if scheduled else lr
                if scheduled:
                    group["initial_lr"] = lr
        for scheduler in schedulers[:1]:
            scheduler["base_lrs"] = [o.lr] * len(scheduler.get("base_lrs", [o.lr]))
            scheduler["_last_lr"] = [o.lr * self._lr_factor(step)] * len(scheduler.get("_last_lr", [o.lr]))

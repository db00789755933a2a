"""The training loop of the unified SE + SS network, on SpeechBrain's Brain.

Only the hooks differ from SpeechBrain's: the forward pass (with the
training-time speed-perturbation remix), the multi-task objectives, and a
``fit_batch`` whose backward pass is delegated to the gradient-modulation
component. The loop knows the SS loss is the main task and the SE loss the
auxiliary one; it does not know how gradients are combined.

Authors
 * gmsep contributors 2026
"""

import contextlib
import logging
import os
import time

import speechbrain as sb
import torch
from speechbrain.utils.distributed import (
    if_main_process,
    is_distributed_initialized,
)

from gmsep.evaluation.metrics import (
    METRIC_NAMES,
    PERCEPTUAL_NAMES,
    perceptual_metrics,
    separation_metrics,
)
from gmsep.evaluation.results import average_results, write_results
from gmsep.losses import evaluation_objectives, weighted_objectives
from gmsep.training.config_checks import accumulation_scales
from gmsep.training.distributed import (
    EvaluationShardSampler,
    all_processes_agree,
    all_reduce_mean,
    gather_in_item_order,
    mean_over_processes,
)

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Raised when too many consecutive batches give a non-finite loss."""


class NoiseRobustSeparationBrain(sb.Brain):
    """Trains and evaluates a ``gmsep.model.UnifiedSeparator``.

    Expected in ``modules``: the network's parts under SpeechBrain's names,
    ``encoder``, ``masknet``, ``decoder`` and (unified network) ``enhancer``;
    they are trained, checkpointed and exported one by one. Expected in
    ``hparams``: ``separator`` (the ``UnifiedSeparator`` built from them),
    ``num_spks``, ``objectives`` (list of ``gmsep.losses.Objective``),
    ``gradient_modulation`` (``gmsep.gradient_modulation.GradientModulation``),
    ``use_speedperturb`` and ``speed_perturb_remix``, ``loss_upper_lim``,
    ``lr_scheduler``, ``epoch_counter``, ``train_logger``, ``output_folder``
    and ``save_folder`` (for ``test_results.csv``); optionally ``condition``
    ("noisy", the default, or "clean"), ``se_weight_decay`` ("constant",
    the paper's, or "linear": the SE loss's weight falls linearly from its
    value to 0 over training), ``gm_params`` ("encoder_enhancer", the
    paper's, or "enhancer": GM on the EnhanceNet only, the Encoder gets the
    plain sum of both gradients) and ``test_pesq``, ``test_stoi`` (PESQ and
    STOI in the test stage; computed when absent).

    SpeechBrain's ``--grad_accumulation_factor`` k makes one optimizer step
    of k batches, equal to one step on a batch k times larger (see
    ``fit_batch``); an epoch's last, incomplete window is dropped, as
    SpeechBrain does.

    Under DDP (``torchrun``) the training set is sharded across processes by
    SpeechBrain; each task's gradient is averaged across processes before the
    modulation, and every decision to skip a batch is taken by all processes
    together. Validation and test sets are sharded here, every item evaluated
    once: the losses are averaged over all processes' batches and the
    per-utterance metrics gathered, so every process sees the whole set's
    figures; only the main process writes logs, checkpoints and
    ``test_results.csv``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # What the forward pass runs: the whole network, wrapped as one
        # module under DDP or DP (see _wrap_distributed).
        self.separator = self.hparams.separator
        if self.checkpointer is not None:
            # The network's parts are recoverables under their module names,
            # as in SpeechBrain's recipes, whatever the backbone.
            self.checkpointer.add_recoverables(dict(self.modules))

    def _wrap_distributed(self):
        """Wraps the UnifiedSeparator in ONE DDP (or DP) wrapper instead of
        each module in its own: the forward pass runs the four modules
        together (the Encoder twice in training), which per-module wrappers
        would not see. The modules keep their parameters, so the optimiser
        and the checkpointer are unchanged."""
        if self.distributed_launch:
            device_ids = (
                None if self.distributed_backend == "gloo" else [self.device]
            )
            self.separator = torch.nn.parallel.DistributedDataParallel(
                self.hparams.separator,
                device_ids=device_ids,
                find_unused_parameters=self.find_unused_parameters,
            )
        elif self.data_parallel_backend:
            self.separator = torch.nn.DataParallel(self.hparams.separator)

    def make_dataloader(self, dataset, stage, *args, **loader_kwargs):
        """Makes SpeechBrain's loader; remembers a training set that changes
        with the epoch (dynamic mixing) to advance it in ``on_stage_start``;
        under DDP gives each process its share of a validation or test set."""
        if stage == sb.Stage.TRAIN and hasattr(dataset, "set_epoch"):
            self.epoch_dependent_train_set = dataset
        if (
            stage != sb.Stage.TRAIN
            and is_distributed_initialized()
            and loader_kwargs.get("sampler") is None
            and loader_kwargs.get("batch_sampler") is None
        ):
            loader_kwargs["sampler"] = EvaluationShardSampler(len(dataset))
        loader = super().make_dataloader(dataset, stage, *args, **loader_kwargs)
        if stage == sb.Stage.TRAIN:
            self.batches_per_epoch = len(loader)  # for se_weight_decay
        return loader

    def on_fit_start(self):
        """Resets the counters of skipped batches and the accumulated
        gradients, sets the accumulation's loss scales, then recovers."""
        self.skipped_batches = {"nonfinite": 0, "loss_upper_lim": 0}
        self.nonfinite_streak = []
        self.aux_grads = None
        self.accumulation_void = False
        self.accumulation_scales = accumulation_scales(
            self.hparams.objectives, self.grad_accumulation_factor
        )
        super().on_fit_start()

    def compute_forward(self, batch, stage):
        """Separates the batch's mixtures.

        In training, with ``use_speedperturb``, every source is speed-perturbed
        on its own and the mixture rebuilt as sum(sources) + noise, or as
        sum(sources) alone under ``condition: clean`` (input ``mix_clean``),
        so that training sees the same kind of mixture as validation and
        test. Without a ``condition`` entry (WHAM!) the input is noisy.

        Arguments
        ---------
        batch : PaddedBatch
            With ``mix_sig``, ``s1_sig`` ... ``sS_sig``, ``noise_sig``, ``clean_sig``.
        stage : sb.Stage

        Returns
        -------
        output : gmsep.model.SeparatorOutput
        sources : torch.Tensor
            The reference sources, [B, T, S].
        mix : torch.Tensor
            The mixture the network saw, [B, T].
        """
        batch = batch.to(self.device)
        mix = batch.mix_sig.data  # B, T
        sources = torch.stack(
            [
                getattr(batch, f"s{i + 1}_sig").data
                for i in range(self.hparams.num_spks)
            ],
            dim=-1,
        )  # B, T, S
        clean_mix = batch.clean_sig.data  # B, T
        if stage == sb.Stage.TRAIN and self.hparams.use_speedperturb:
            noisy = getattr(self.hparams, "condition", "noisy") != "clean"
            mix, sources, clean_mix = self.hparams.speed_perturb_remix(
                sources, batch.noise_sig.data if noisy else None
            )
        # The SE target is only needed where the SE loss is: in training.
        clean_mix = clean_mix if stage == sb.Stage.TRAIN else None
        separator = self.separator
        if stage != sb.Stage.TRAIN:
            # Not through the DDP wrapper: its forward synchronises buffers
            # with a collective, and the processes' evaluation shares may
            # differ by one batch.
            separator = getattr(separator, "module", separator)
        output = separator(mix, clean_mix)
        return output, sources, mix

    def compute_task_losses(self, predictions, stage=sb.Stage.TRAIN):
        """The weighted main (SS) and auxiliary (SE) losses.

        Arguments
        ---------
        predictions : tuple
            What ``compute_forward`` returned.
        stage : sb.Stage
            Outside training only the main objective is computed, as
            validation and test compute it: without the SS loss's SI-SNR
            threshold, which is a training device
            (``gmsep.losses.evaluation_objectives``).

        Returns
        -------
        main_loss : torch.Tensor
            Scalar.
        aux_loss : torch.Tensor or None
            Scalar, None without auxiliary objectives.
        """
        output, sources, _ = predictions
        objectives = self.hparams.objectives
        if stage != sb.Stage.TRAIN:
            objectives = evaluation_objectives(objectives)
        main_loss, aux_loss, _ = weighted_objectives(
            objectives, output, sources
        )
        if stage == sb.Stage.TRAIN and aux_loss is not None:
            aux_loss = aux_loss * self.se_weight_factor()
        return main_loss, aux_loss

    def se_weight_factor(self):
        """The factor of the SE loss's weight at the current step: 1 with
        ``se_weight_decay: constant`` (the paper's); with ``linear``,
        1 - (steps done) / (steps of the whole training), so that the
        auxiliary task shapes the early training and leaves the end to SS."""
        if getattr(self.hparams, "se_weight_decay", "constant") == "constant":
            return 1.0
        per_epoch = self.batches_per_epoch
        counter = self.hparams.epoch_counter
        done = (counter.current - 1) * per_epoch + self.step - 1
        return max(0.0, 1.0 - done / (counter.limit * per_epoch))

    def compute_objectives(self, predictions, batch, stage):
        """The loss of a stage: the SS loss in validation and test (model
        selection uses SS only), the total weighted loss in training."""
        main_loss, aux_loss = self.compute_task_losses(predictions, stage)
        return main_loss if aux_loss is None else main_loss + aux_loss

    def fit_batch(self, batch):
        """One optimisation step with gradient modulation, or one micro-batch
        of it with ``grad_accumulation_factor`` k > 1.

        With k > 1 each task's gradient is accumulated on its own over k
        micro-batches and GM combines the accumulated gradients once, before
        the optimizer step: k micro-batches of b equal-length items give the
        update of one batch of k * b (GM is not linear, so modulating each
        micro-batch would not). Every loss that averages over the batch is
        divided by k, a loss summed over it (``se_reduction: sum``) is not.

        Batches with a non-finite loss or gradient, or an SS loss above
        ``loss_upper_lim``, are skipped (no update) and counted; with k > 1 an
        unusable micro-batch voids the update of its k micro-batches, as it
        would void the one large batch.
        """
        should_step = self.step % self.grad_accumulation_factor == 0
        with self._no_sync(not should_step):
            with self.training_ctx:
                predictions = self.compute_forward(batch, sb.Stage.TRAIN)
                main_loss, aux_loss = self.compute_task_losses(predictions)
            total_loss = main_loss if aux_loss is None else main_loss + aux_loss
            if not self._batch_is_usable(batch, main_loss, total_loss):
                self._clear_accumulation(void=True)
            elif not self.accumulation_void:
                self._backward(main_loss, aux_loss)
        if should_step:
            self._step(batch)
        return main_loss.detach().cpu()

    def _backward(self, main_loss, aux_loss):
        """Back-propagates a (micro-)batch's losses, scaled for accumulation."""
        main_scale, aux_scale = self.accumulation_scales
        main_loss = self.scaler.scale(main_loss * main_scale)
        if aux_loss is not None:
            aux_loss = self.scaler.scale(aux_loss * aux_scale)
        gm = self.hparams.gradient_modulation
        if aux_loss is not None and gm.mode != "none":
            self._add_unmodulated_aux_gradient(aux_loss)
        # Without modulation ("none") the combination is a sum, and sums of
        # micro-batches add up: one backward each, as without accumulation.
        if (
            self.grad_accumulation_factor == 1
            or aux_loss is None
            or gm.mode == "none"
        ):
            # DDP averages the main gradient, not the auxiliary one.
            gm.backward(
                main_loss,
                aux_loss,
                self.shared_parameters(),
                aux_grad_reduce=(
                    all_reduce_mean if is_distributed_initialized() else None
                ),
            )
            return
        # The auxiliary gradient of the shared parameters in its own buffers;
        # the main one accumulates in .grad. GM combines them in _step.
        shared = self.shared_parameters()
        aux_grads = torch.autograd.grad(
            aux_loss, shared, retain_graph=True, allow_unused=True
        )
        if self.aux_grads is None:
            self.aux_grads = list(aux_grads)
        else:
            self.aux_grads = [
                new if old is None else old if new is None else old.add_(new)
                for old, new in zip(self.aux_grads, aux_grads, strict=True)
            ]
        main_loss.backward()

    def _add_unmodulated_aux_gradient(self, aux_loss):
        """Adds the auxiliary gradient of the parameters both losses reach
        but GM leaves alone (the Encoder with ``gm_params: enhancer``) to
        their ``.grad``: they get the plain sum, as with ``gm_mode: none``."""
        params = self.unmodulated_shared_parameters()
        if not params:
            return
        grads = torch.autograd.grad(
            aux_loss, params, retain_graph=True, allow_unused=True
        )
        if is_distributed_initialized():
            grads = all_reduce_mean(grads)
        for p, grad in zip(params, grads, strict=True):
            if grad is not None:
                p.grad = grad if p.grad is None else p.grad.add_(grad)

    def _step(self, batch):
        """Ends an accumulation window: modulates the accumulated task
        gradients, checks them and steps the optimizer."""
        if self.accumulation_void:
            self._clear_accumulation()
            return
        if self.aux_grads is not None:
            aux_grads = self.aux_grads
            if is_distributed_initialized():
                aux_grads = all_reduce_mean(aux_grads)
            shared = self.shared_parameters()
            main_grads = [
                torch.zeros_like(p) if p.grad is None else p.grad
                for p in shared
            ]
            combined = self.hparams.gradient_modulation.combine(
                main_grads, list(aux_grads)
            )
            for p, grad in zip(shared, combined, strict=True):
                p.grad = grad
            self.aux_grads = None
        # With fp16 the GradScaler skips non-finite steps and lowers its scale.
        if not self.scaler.is_enabled() and not self._gradients_are_finite():
            self._count_nonfinite(batch, "gradient")
            self._clear_accumulation()
            return
        self.nonfinite_streak = []
        self.optimizers_step()

    def _clear_accumulation(self, void=False):
        """Drops the gradients accumulated so far; ``void``: the rest of the
        accumulation window adds none and makes no step."""
        self.zero_grad(set_to_none=True)
        self.aux_grads = None
        self.accumulation_void = void

    def _no_sync(self, use):
        """DDP's no_sync on the separator (SpeechBrain's ``no_sync`` looks
        for wrappers in ``modules``, see _wrap_distributed)."""
        if use and hasattr(self.separator, "no_sync"):
            return self.separator.no_sync()
        return contextlib.nullcontext()

    def shared_parameters(self):
        """The parameters GM modulates: those both losses reach, encoder and
        enhancer, or the enhancer alone with ``gm_params: enhancer``."""
        separator = self.hparams.separator
        shared = [separator.enhancer]
        if self._gm_params() == "encoder_enhancer":
            shared.insert(0, separator.encoder)
        return _trainable(shared)

    def unmodulated_shared_parameters(self):
        """The parameters both losses reach that GM leaves alone: the
        encoder with ``gm_params: enhancer``, none otherwise."""
        if self._gm_params() == "encoder_enhancer":
            return []
        return _trainable([self.hparams.separator.encoder])

    def _gm_params(self):
        return getattr(self.hparams, "gm_params", "encoder_enhancer")

    def _batch_is_usable(self, batch, main_loss, total_loss):
        """Counts and reports skipped batches; stops after too many non-finite
        losses in a row, naming the batches. Under DDP a batch is skipped by
        all processes when it is unusable on any of them."""
        finite, below_limit = all_processes_agree(
            torch.stack(
                [
                    torch.isfinite(total_loss),
                    main_loss.detach() <= self.hparams.loss_upper_lim,
                ]
            )
        )
        if not finite:
            self._count_nonfinite(batch, "loss")
            return False
        if not below_limit:
            self.nonfinite_streak = []
            self.skipped_batches["loss_upper_lim"] += 1
            return False
        return True

    def _gradients_are_finite(self):
        """Whether every gradient is finite (one host sync). Under DDP the
        gradients are averages, so all processes find the same."""
        grads = [
            p.grad for p in self.modules.parameters() if p.grad is not None
        ]
        return bool(torch.nn.utils.get_total_norm(grads).isfinite())

    def _count_nonfinite(self, batch, what):
        """Counts a batch skipped for a non-finite loss or gradient; raises
        after more than ``nonfinite_patience`` in a row."""
        self.skipped_batches["nonfinite"] += 1
        self.nonfinite_streak.append(list(batch.id))
        logger.warning(f"Non-finite {what} on batch {batch.id}: skipped.")
        if len(self.nonfinite_streak) > self.nonfinite_patience:
            raise NonFiniteLossError(
                f"{len(self.nonfinite_streak)} consecutive batches gave a "
                f"non-finite loss or gradient (nonfinite_patience="
                f"{self.nonfinite_patience}); their IDs: "
                f"{self.nonfinite_streak}"
            )

    @torch.no_grad()
    def evaluate_batch(self, batch, stage):
        """Computes the SS loss; in the test stage also per-utterance metrics."""
        with self.evaluation_ctx:
            predictions = self.compute_forward(batch, stage)
            loss = self.compute_objectives(predictions, batch, stage)
        self.evaluated_batches += 1
        if stage == sb.Stage.TEST:
            self._store_test_metrics(batch, predictions)
        return loss.detach().cpu()

    def _store_test_metrics(self, batch, predictions):
        """Appends the metrics of every utterance of the batch, on its
        unpadded length."""
        output, sources, mix = predictions
        lengths = (batch.mix_sig.lengths * mix.shape[1]).round().long()
        for i, snt_id in enumerate(batch.id):
            length = lengths[i]
            metrics = separation_metrics(
                output.est_sources[i, :length].float(),
                sources[i, :length],
                mix[i, :length],
            )
            values, undefined = perceptual_metrics(
                output.est_sources[i, :length].float(),
                sources[i, :length],
                self.hparams.sample_rate,
                self.perceptual_names,
            )
            for reason in undefined.values():
                logger.warning(f"{snt_id}: {reason}; left out of its average")
            self.test_metrics.append({"snt_id": snt_id, **metrics, **values})

    @property
    def perceptual_names(self):
        """The perceptual metrics of the test stage (``test_pesq``,
        ``test_stoi``)."""
        return [
            name
            for name in PERCEPTUAL_NAMES
            if getattr(self.hparams, f"test_{name}", True)
        ]

    def on_stage_start(self, stage, epoch=None):
        """Resets the GM statistics (train), the count of evaluated batches
        and the test metrics (test)."""
        self.evaluated_batches = 0
        if stage == sb.Stage.TRAIN:
            self.stage_start = (time.perf_counter(), self.step)
            # SpeechBrain drops an epoch's incomplete accumulation window.
            self.aux_grads = None
            self.accumulation_void = False
            self.hparams.gradient_modulation.reset_stats()
            train_set = getattr(self, "epoch_dependent_train_set", None)
            if train_set is not None:
                train_set.set_epoch(epoch)
        if stage == sb.Stage.TEST:
            self.test_metrics = []  # this process's share
            self.test_results = []  # the whole set, once gathered

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs, schedules the learning rate, checkpoints, writes test results."""
        if is_distributed_initialized():
            if stage == sb.Stage.TRAIN:
                batches = self.step
            else:
                batches = self.evaluated_batches
                logger.info(
                    f"{stage.name.lower()}: {batches} batches "
                    f"evaluated by process {torch.distributed.get_rank()}"
                )
            # SpeechBrain's average is over this process's share.
            stage_loss = mean_over_processes(stage_loss, batches, self.device)
        stage_stats = {"si-snr": stage_loss}
        if stage == sb.Stage.TRAIN:
            self.train_stats = {
                **stage_stats,
                **self._seconds_per_step(),
                **self.hparams.gradient_modulation.stats(),
                **{f"skipped_{k}": v for k, v in self.skipped_batches.items()},
            }
            self.skipped_batches = dict.fromkeys(self.skipped_batches, 0)
        elif stage == sb.Stage.VALID:
            current_lr, next_lr = self.hparams.lr_scheduler(
                [self.optimizer], epoch, stage_loss
            )
            sb.nnet.schedulers.update_learning_rate(self.optimizer, next_lr)
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": current_lr},
                train_stats=self.train_stats,
                valid_stats=stage_stats,
            )
            self.checkpointer.save_and_keep_only(
                meta={"si-snr": stage_loss},
                min_keys=["si-snr"],
                num_to_keep=self.hparams.ckpt_num_to_keep,
            )
        elif stage == sb.Stage.TEST:
            self.test_averages = self.write_test_results()
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats={**stage_stats, **self.test_averages},
            )

    def _seconds_per_step(self):
        """The training epoch's wall seconds per optimizer step, as a stat
        (none when the epoch did not start through ``on_stage_start``)."""
        if getattr(self, "stage_start", None) is None:
            return {}
        start_time, start_step = self.stage_start
        self.stage_start = None
        steps = max(1, self.step - start_step)
        return {"seconds_per_step": (time.perf_counter() - start_time) / steps}

    def write_test_results(self):
        """Writes ``test_results.csv`` (one row per utterance of the whole
        test set, then the averages) and returns the averages."""
        rows = gather_in_item_order(self.test_metrics)
        self.test_results = rows
        names = [*METRIC_NAMES, *self.perceptual_names]
        # PESQ and STOI are undefined on some utterances (too short)
        averages = average_results(
            rows, names, defined_only=self.perceptual_names
        )
        if if_main_process():
            path = os.path.join(self.hparams.output_folder, "test_results.csv")
            write_results(path, rows, "snt_id", names, averages)
            logger.info(f"Per-utterance test results written to {path}")
        return averages


def _trainable(modules):
    """The trainable parameters of the modules that exist."""
    return [
        p
        for module in modules
        if module is not None
        for p in module.parameters()
        if p.requires_grad
    ]

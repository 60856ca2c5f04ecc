"""The Ray layer: the only place whaleflow touches Ray.

* :mod:`.pipeline` — ``run_ray`` / ``run_tune`` / ``run_ensemble_job`` and the Ray session;
* :mod:`.ray_executor` — how ``whaleflow.pipeline.run_pipeline``'s steps run on Ray;
* :mod:`.tuner` — the Tune experiment (one trial per model variant), resume, resources;
* :mod:`.search_space` — each model's ``search:`` YAML → Tune domains, trial names;
* :mod:`.variant_searcher`, :mod:`.per_model_asha` — Optuna and ASHA, one per model;
* :mod:`.trainable` — the function trainable and its Tune-reporting engine callback;
* :mod:`.mining_actor`, :mod:`.mining_client` — a siamese trial's MiningActor and its client;
* :mod:`.ensemble_driver` — the ensemble as one Ray task;
* :mod:`.cli` — the ``whaleflow`` command.

Nothing here starts Ray at import time.
"""

"""Record training run by a framework's own loop: ``auditor.integrations.transformers`` (the Hugging
Face ``Trainer``) and ``auditor.integrations.lightning`` (PyTorch Lightning). Each imports its
framework only when imported itself, and only calls the ``Recorder``."""

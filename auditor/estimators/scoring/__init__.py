"""Scoring stage embeddings against behaviours: one gradient per behaviour (``gradients``), the
plug-in form f(θ_T) − f(θ_T − e_k) (``plugin``), and batched probe families (``families``)."""

"""Curvature of one training step: exact Hessian, Gauss–Newton and empirical Fisher products
(``products``), and the unrolled propagation in a random projection (``projection``)."""

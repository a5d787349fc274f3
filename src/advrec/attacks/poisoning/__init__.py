"""Optimised and generated data poisoning: fake profiles computed by gradient against a
surrogate model, or generated from real template users.

``pga`` / ``sgld`` (Li et al., NeurIPS'16), ``revadv`` (Tang et al., RecSys'20), ``influence``
(Fang et al., WWW'20), ``dlattack`` (Huang et al., NDSS'21), ``aush`` (Lin et al., CIKM'20),
``legup`` (Lin et al., TNNLS'22), the black-box ``poisonrec`` (Song et al., ICDE'20); each on
the contract of :mod:`advrec.attacks.poisoning.base`. Build them by name with
:func:`advrec.attacks.injection.make_injection`.
"""

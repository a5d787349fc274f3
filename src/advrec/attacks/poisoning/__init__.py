"""Optimised data poisoning: fake profiles computed by gradient against a surrogate model.

``pga`` / ``sgld`` (Li et al., NeurIPS'16), ``revadv`` (Tang et al., RecSys'20), ``influence``
(Fang et al., WWW'20), ``dlattack`` (Huang et al., NDSS'21); each on the contract of
:mod:`advrec.attacks.poisoning.base`. Build them by name with
:func:`advrec.attacks.injection.make_injection`.
"""

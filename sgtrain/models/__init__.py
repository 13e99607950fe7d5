"""Network families, one folder each (``sgtrain.models.<family>``: networks, loss, file readers, ``FAMILY``).

:mod:`sgtrain.models.family` is the seam: the :class:`~sgtrain.models.family.Family` descriptor and the registry.
"""

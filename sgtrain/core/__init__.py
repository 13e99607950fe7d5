"""The GAN core, without Lightning or Hydra: the loss template (:mod:`~sgtrain.core.loss`), the regularizers
(:mod:`~sgtrain.core.regularizers`), ADA augmentation (:mod:`~sgtrain.core.augment`) and the progressive schedule
(:mod:`~sgtrain.core.schedule`). The training app (:mod:`sgtrain.training`) is the Lightning adapter over it."""

"""The training engine (Lightning): ``train()`` of one run from a typed :class:`~spinalnet.engine.config.TrainConfig`,
its module, callbacks and checkpoint I/O. It imports nothing above it (comparison, commands)."""

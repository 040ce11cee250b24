"""The learned multi-modality codec: plain PyTorch + CompressAI (never imports rclpy)."""

import warnings

# CompressAI 1.2.8 calls torch.jit.script at import time, which PyTorch 2.14 flags as deprecated;
# the message says nothing about this project and would be printed by every command.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)

"""Rate-distortion training: data loaders and the resumable trainer."""

"""Joint restoration at the decoder (zero bits): net.py (JointRestorer), restorer.py (Restorer, the
model at a decoder), data.py (training chains from the product's own standard layers), train.py
(the trainer, alone or under torchrun)."""

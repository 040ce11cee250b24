"""The message policy shared by the nodes, the bag tools and the command line, without ROS (no
rclpy import): pairing RGB and thermal messages (synchronizer.py), one stream of image pairs into
packets (pair_encoder.py), packets back into image pairs (pair_decoder.py), and the one-line notes
they make with how often a repeated one is said (notes.py). Below it, codec/ codes numpy arrays
and knows no message shapes; above it, ros/ and bag/ are thin adapters."""

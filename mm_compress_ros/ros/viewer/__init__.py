"""viewer_node, the operator's browser page: node.py (the rclpy node), state.py (what it knows),
web.py (the aiohttp server and its WebSockets), render.py (frames -> JPEG messages), static/ (the page)."""

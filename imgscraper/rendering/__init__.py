"""Pages rendered in headless Chromium (``-a render=yes``); imported only when rendering is on."""

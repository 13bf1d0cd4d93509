"""Machinery shared by the component kinds: proxies, class patching, weak tracking, sizing."""

"""Fax device drivers. Each driver is one module and registers through the plugin hooks like a third party's."""

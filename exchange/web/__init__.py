"""The web app served by `margincall serve` on its HTTP port (see `exchange.web.app`)."""

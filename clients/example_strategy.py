"""The README's ten-line strategy: buy dips under the 20-tick average mark, sell 0.2 % higher.

MC_KEY=... MC_SECRET=... python -m clients.example_strategy   (keys: `margincall demo` prints some)
MC_URL=ws://HOST:PORT for a server elsewhere than ws://127.0.0.1:8765 (`demo --port`, `serve`).
"""

import asyncio
import os
from decimal import Decimal

from clients import Client


async def main(url: str = "ws://127.0.0.1:8765") -> None:
    async with Client(url, api_key=os.environ["MC_KEY"], secret=os.environ["MC_SECRET"]) as c:
        [marks], window = await c.subscribe("mark.BTCUSDT@raw"), []  # every tick
        async for m in marks:
            window = [*window, Decimal(m["mark"])][-20:]
            dip = len(window) == 20 and window[-1] < sum(window) / 20 * Decimal("0.998")
            if dip and not await c.position("BTCUSDT"):
                await c.place_order("BTCUSDT", "BUY", "0.010")  # market
                take_profit = (window[-1] * Decimal("1.002")).quantize(Decimal("0.1"))
                await c.place_order("BTCUSDT", "SELL", "0.010", take_profit, reduce_only=True)


if __name__ == "__main__":
    asyncio.run(main(os.environ.get("MC_URL", "ws://127.0.0.1:8765")))

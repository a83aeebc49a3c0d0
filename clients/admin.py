"""The admin methods of `Client` (accounts, money, index, funding, halts, instruments,
the clock, stats): a mixin over `request`, which `clients.client.Client` provides. Each
needs an admin logon (`Client(admin_token=...)` or `admin_logon`)."""

from __future__ import annotations

from typing import Any

from clients.results import AccountStatus, NewAccount, Num, dec


class AdminMethods:
    """Admin API methods; `request(method, params)` comes from the client."""

    async def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        raise NotImplementedError

    async def create_account(self, deposit: Num | None = None, asset: str = "USDT") -> NewAccount:
        p: dict[str, Any] = {}
        if deposit is not None:
            p["deposit"] = dec(deposit)
            p["asset"] = asset
        result: NewAccount = await self.request("admin.createAccount", p)
        return result

    async def deposit(self, account: int, amount: Num, asset: str = "USDT") -> AccountStatus:
        result: AccountStatus = await self.request(
            "admin.deposit", {"account": account, "asset": asset, "amount": dec(amount)}
        )
        return result

    async def withdraw(self, account: int, amount: Num, asset: str = "USDT") -> AccountStatus:
        result: AccountStatus = await self.request(
            "admin.withdraw", {"account": account, "asset": asset, "amount": dec(amount)}
        )
        return result

    async def set_index(self, symbol: str, price: Num) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "admin.setIndex", {"symbol": symbol, "price": dec(price)}
        )
        return result

    async def shock_index(self, symbol: str, change: Num) -> dict[str, Any]:
        """Move the index by a relative change: `"-0.10"` is a 10 % crash."""
        result: dict[str, Any] = await self.request(
            "admin.shockIndex", {"symbol": symbol, "change": dec(change)}
        )
        return result

    async def set_funding_rate(self, symbol: str, rate: Num) -> dict[str, Any]:
        """Impose the funding rate of the next funding time: `"0.0003"` is 0.03 %."""
        result: dict[str, Any] = await self.request(
            "admin.setFundingRate", {"symbol": symbol, "rate": dec(rate)}
        )
        return result

    async def halt(self, symbol: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("admin.halt", {"symbol": symbol})
        return result

    async def resume(self, symbol: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("admin.resume", {"symbol": symbol})
        return result

    async def add_instrument(self, instrument: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "admin.addInstrument", {"instrument": instrument}
        )
        return result

    async def advance_clock(
        self, *, to: int | None = None, by: int | None = None
    ) -> dict[str, Any]:
        p = {"to": to} if to is not None else {"by": by}
        result: dict[str, Any] = await self.request("admin.advanceClock", p)
        return result

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("admin.stats")
        return result

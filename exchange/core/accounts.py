"""Accounts and transfers: wallets per asset, deposits, withdrawals, the insurance fund.

An account's `available` balance is free cash and `reserved` what its open orders hold
back (the orders room moves money between the two). Every balance change marks the
(account, asset) touched; one `BalanceChanged` per touched pair is emitted when the
command's changes are flushed. Balances never go negative (asserted by `_check_accounts`).
"""

from __future__ import annotations

from typing import Any

from . import commands as C
from . import events as E
from .errors import Code, Rejected
from .numbers import money_text
from .room import Room
from .state import FUND, Account


class Accounts(Room):
    """Account creation, deposits and withdrawals; balance bookkeeping."""

    def _account(self, account_id: Any) -> Account:
        a = self.accounts.get(account_id) if type(account_id) is int else None
        if a is None or account_id == FUND:
            raise Rejected(Code.UNKNOWN_ACCOUNT)
        return a

    def _asset(self, asset: Any) -> str:
        if type(asset) is not str or not asset or not asset.isalnum() or len(asset) > 12:
            raise Rejected(Code.INVALID_PARAMETER, "asset must be a short alphanumeric name.")
        return asset

    def _credit(self, acct: Account, asset: str, amount: int) -> None:
        acct.available[asset] = acct.available.get(asset, 0) + amount
        self._touch_balance(acct.id, asset)

    def _touch_balance(self, account: int, asset: str) -> None:
        self._balances_touched[(account, asset)] = None

    def _create_account(self, cmd: C.CreateAccount) -> None:
        aid = self._int(cmd.account, "account", 1, 2**63 - 1)
        if aid in self.accounts:
            raise Rejected(Code.ACCOUNT_EXISTS)
        self.accounts[aid] = Account(aid)
        self._emit(E.AccountCreated, aid)

    def _deposit(self, cmd: C.Deposit) -> None:
        acct = self._account(cmd.account)
        asset = self._asset(cmd.asset)
        amount = self._int(cmd.amount, "amount", unit=lambda q: money_text(q, asset))
        self._credit(acct, asset, amount)
        self.deposited[asset] = self.deposited.get(asset, 0) + amount
        self._emit(E.FundsDeposited, acct.id, asset, amount)
        self._flush_balances()

    def _withdraw(self, cmd: C.Withdraw) -> None:
        acct = self._account(cmd.account)
        asset = self._asset(cmd.asset)
        amount = self._int(cmd.amount, "amount", unit=lambda q: money_text(q, asset))
        if amount > acct.available.get(asset, 0):
            raise Rejected(Code.BALANCE_INSUFFICIENT)
        self._credit(acct, asset, -amount)
        self.withdrawn[asset] = self.withdrawn.get(asset, 0) + amount
        self._emit(E.FundsWithdrawn, acct.id, asset, amount)
        self._flush_balances()

    def _flush_balances(self) -> None:
        """Announce each balance touched since the last flush with one `BalanceChanged`,
        in the order first touched. O(1) each: it runs after every command that moves
        money, and a cascade runs it once per liquidation."""
        bt = self._balances_touched
        self._balances_touched = {}
        accounts = self.accounts
        append = self._out.append
        now = self.now
        seq = self.seq
        balance_changed = E.BalanceChanged.new
        for account, asset in bt:
            acct = accounts[account]
            seq += 1
            append(
                balance_changed(
                    seq,
                    now,
                    account,
                    asset,
                    acct.available.get(asset, 0),
                    acct.reserved.get(asset, 0),
                )
            )
        self.seq = seq

    def insurance_fund(self, asset: str = "USDT") -> int:
        return self.accounts[FUND].available.get(asset, 0)

    def _check_accounts(self) -> None:
        """No balance is negative; money is conserved exactly in every asset."""
        for a in self.accounts.values():
            for asset, v in a.available.items():
                assert v >= 0, f"negative balance {a.id} {asset}"
        for asset in set(self.deposited) | set(self.fees_collected):
            held, net_in = self.conservation(asset)
            assert held == net_in, f"money not conserved in {asset}: {held} != {net_in}"

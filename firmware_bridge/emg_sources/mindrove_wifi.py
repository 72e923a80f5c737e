"""`mindrove[:IP]` — the MindRove WiFi armband through the SDK (8 ch @ 500 Hz, the 39-row layout).

Reaching the armband. The SDK talks UDP to the armband's own access point: `prepare_session` and
`start_stream` return at once whether or not an armband is there, so reachability is decided by data:
`start()` waits up to `connect_timeout_s` (5 s) for the first samples and otherwise releases the board
and raises SourceError ("cannot reach the MindRove armband at …"). Releasing an SDK WiFi session takes
about 1–3 s, so the whole failure takes ≈ connect_timeout_s + 3 s.

Known SDK behaviour (mindrove 5.3.0, measured here):
- `MindRoveInputParams.ip_address` is passed on, but the SDK logs "Target address is set to :
  192.168.4.1::4210" whatever it says: this SDK always uses the armband's default address. The IP in
  `mindrove:IP` is therefore mainly reported in messages; a later SDK may honour it.
- The WiFi board can be initialised once per process ("MindroveWifi board can be only initialized
  once"): open it once and keep it; a second session in the same process receives nothing.
- The first reads carry a backlog of several seconds; the checker discards it (see checks.py).

Units: µV from SDK 5 on; an older SDK's raw counts are converted (× 0.045 µV, see units.py).
"""

from __future__ import annotations

import ipaddress
import time

from firmware_bridge.emg_sources.base import SourceError
from firmware_bridge.emg_sources.sdk import Layout, SdkBoardSource, load_sdk
from firmware_bridge.emg_sources.units import UV_PER_COUNT, sdk_reports_counts

DEFAULT_ADDRESS = "192.168.4.1"  # the armband's own access point, where the SDK sends (port 4210)


class MindRoveWifiSource(SdkBoardSource):
    def __init__(
        self,
        ip: str | None = None,
        *,
        stall_ms: float = 50.0,
        backlog_keep_s: float = 0.1,
        connect_timeout_s: float = 5.0,
    ) -> None:
        spec = f"mindrove:{ip}" if ip else "mindrove"
        if ip:
            try:
                ipaddress.ip_address(ip)
            except ValueError as error:
                raise SourceError(f"{spec}: '{ip}' is not an IP address (write mindrove:192.168.4.1)") from error
        sdk = load_sdk(spec)
        wifi = int(sdk.BoardIds.MINDROVE_WIFI_BOARD.value)
        layout = Layout.of(sdk, wifi)
        params = sdk.MindRoveInputParams()
        if ip:
            params.ip_address = ip
        self.converted_from_counts = sdk_reports_counts(sdk.version)
        checker = layout.armband_checker(stall_ms=stall_ms, backlog_keep_s=backlog_keep_s)
        self.address = ip or DEFAULT_ADDRESS
        self.connect_timeout_s = float(connect_timeout_s)
        super().__init__(
            name=spec,
            sdk=sdk,
            board_id=wifi,
            params=params,
            layout=layout,
            checker=checker,
            scale=UV_PER_COUNT if self.converted_from_counts else 1.0,
        )
        self.sampling_rate_hz = layout.rate_hz

    def _start(self) -> None:
        super()._start()
        assert self._board is not None
        deadline = time.monotonic() + self.connect_timeout_s
        while time.monotonic() < deadline:
            if self._board.get_board_data_count() > 0:
                return
            time.sleep(0.01)
        self._release()
        raise SourceError(
            f"{self.name}: cannot reach the MindRove armband at {self.address} (no data within "
            f"{self.connect_timeout_s:g} s): is it on, is this machine on its WiFi?"
        )

"""T.30 pieces for Class 1: HDLC frames (FCS, bit order, flags), FCF values, DIS/DCS capabilities, rates, timers.

Two notations (see ``/work/shared/research/fax-domain.md`` §2.3): the T.30 text writes an octet with its first
transmitted bit as the most significant one (DIS = 0x01, DCS = 0x41, X bit = 0x80, final control 0xC8); on the
DTE link of a Class 1 modem bytes are in serial order, least significant bit first, so every FCF and every
DIS/DCS information octet appears bit-reversed there (DIS = 0x80, DCS|X = 0x83, final control 0x13). The
constants here are in T.30 notation; :meth:`Frame.wire` and :func:`parse_frame` convert. Identity strings
(CSI/TSI) are IA5 characters sent last character first and are not bit-reversed (characters go LSB first on
the line anyway).

The modem adds the opening/closing flags and the FCS when it sends a frame, and delivers a received frame with
its two FCS octets; :func:`hdlc_encode` / :func:`hdlc_decode` are the bit-level framing (flags 0x7E, zero-bit
stuffing, LSB first) that the simulated modem puts on its simulated line.

Timing: pure computation. Atomicity: not applicable.
"""

from __future__ import annotations

from dataclasses import dataclass

from zetafailover.devices.modem.pages import REVERSE

__all__ = [
    "CFR",
    "CRP",
    "CSI",
    "DCN",
    "DCS",
    "DIS",
    "EOM",
    "EOP",
    "FTT",
    "MCF",
    "MPS",
    "NSF",
    "PIN",
    "PIP",
    "RATES",
    "RTN",
    "RTP",
    "TSI",
    "Caps",
    "Frame",
    "FrameError",
    "Rate",
    "T30Timers",
    "fcs16",
    "frame_name",
    "hdlc_decode",
    "hdlc_encode",
    "ident_fif",
    "parse_frame",
    "parse_ident",
    "tcf_ok",
]

# FCF values, T.30 text notation (X bit stripped).
DIS, CSI, NSF = 0x01, 0x02, 0x04
DCS, TSI = 0x41, 0x42
CFR, FTT = 0x21, 0x22
EOM, MPS, EOP = 0x71, 0x72, 0x74
MCF, RTN, RTP, PIN, PIP = 0x31, 0x32, 0x33, 0x34, 0x35
CRP, DCN = 0x58, 0x5F
X_BIT = 0x80
_NAMES = {DIS: "DIS", CSI: "CSI", NSF: "NSF", DCS: "DCS", TSI: "TSI", CFR: "CFR", FTT: "FTT", EOM: "EOM",
          MPS: "MPS", EOP: "EOP", MCF: "MCF", RTN: "RTN", RTP: "RTP", PIN: "PIN", PIP: "PIP", CRP: "CRP",
          DCN: "DCN"}  # fmt: skip
ADDRESS = 0xFF
CONTROL, CONTROL_FINAL = 0x03, 0x13
"""Control field on the DTE link (T.30 text: 0xC0 and 0xC8 — the final-frame bit)."""


class FrameError(ValueError):
    """A received HDLC frame is malformed (too short, bad FCS, bad address or control field)."""


def frame_name(fcf: int) -> str:
    return _NAMES.get(fcf & 0x7F, f"FCF 0x{fcf:02X}")


@dataclass(frozen=True, slots=True)
class T30Timers:
    """The T.30 timers (seconds) and retry limits. T1: the stations identify each other (35 s ± 5); T2: a
    receiver's command search (6 s ± 1); T4: a sender's response search (3 s ± 15 %); ``pause``: the silence
    before answering a frame (75 ms ± 20); ``retries``: a command is sent at most this many times (DCS, MPS,
    EOP: 3)."""

    t1: float = 35.0
    t2: float = 6.0
    t4: float = 3.0
    pause: float = 0.075
    retries: int = 3


@dataclass(frozen=True, slots=True)
class Frame:
    """One T.30 HDLC frame: FCF in T.30 notation (without the X bit), the X bit, final or not, and the FIF as
    it is on the DTE link."""

    fcf: int
    fif: bytes = b""
    x: bool = False
    final: bool = True

    @property
    def name(self) -> str:
        return frame_name(self.fcf)

    def wire(self) -> bytes:
        """The frame as the host gives it to the modem (address, control, FCF, FIF; no flags, no FCS)."""
        fcf = (self.fcf | (X_BIT if self.x else 0)) & 0xFF
        return bytes((ADDRESS, CONTROL_FINAL if self.final else CONTROL, REVERSE[fcf])) + self.fif


def fcs16(data: bytes) -> int:
    """The HDLC frame check sequence (CRC-16/X.25: reflected 0x1021, init and final XOR 0xFFFF) of ``data``."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def with_fcs(data: bytes) -> bytes:
    """``data`` followed by its FCS, low octet first (as a modem delivers a received frame)."""
    fcs = fcs16(data)
    return data + bytes((fcs & 0xFF, fcs >> 8))


def parse_frame(data: bytes, *, has_fcs: bool = True) -> Frame:
    """A frame from the DTE link (with its two FCS octets unless ``has_fcs`` is False). Raises FrameError."""
    if has_fcs:
        if len(data) < 5:
            raise FrameError(f"frame of {len(data)} bytes is too short")
        body = data[:-2]
        if with_fcs(body) != data:
            raise FrameError(f"bad FCS on frame {data.hex()}")
    else:
        body = data
        if len(body) < 3:
            raise FrameError(f"frame of {len(data)} bytes is too short")
    if body[0] != ADDRESS or body[1] not in (CONTROL, CONTROL_FINAL):
        raise FrameError(f"bad address/control field {body[:2].hex()}")
    fcf = REVERSE[body[2]]
    return Frame(fcf & 0x7F, bytes(body[3:]), bool(fcf & X_BIT), body[1] == CONTROL_FINAL)


def hdlc_encode(frame: bytes, flags: int = 2) -> list[int]:
    """Bits on the line for ``frame`` (FCS included): ``flags`` opening flags, zero-bit-stuffed data LSB first,
    one closing flag."""
    flag = [0, 1, 1, 1, 1, 1, 1, 0]
    bits: list[int] = flag * flags
    ones = 0
    for byte in frame:
        for i in range(8):
            bit = (byte >> i) & 1
            bits.append(bit)
            ones = ones + 1 if bit else 0
            if ones == 5:
                bits.append(0)
                ones = 0
    return bits + flag


def hdlc_decode(bits: list[int]) -> list[bytes]:
    """Frames (with FCS) found between flags in ``bits``: stuffed zeros removed, octets LSB first. Frames
    whose length is not whole octets, and aborts (seven ones), are dropped."""
    frames: list[bytes] = []
    current: list[int] | None = None
    ones = 0
    i = 0
    n = len(bits)
    while i < n:
        if bits[i : i + 8] == [0, 1, 1, 1, 1, 1, 1, 0]:
            if current is not None and current and len(current) % 8 == 0:
                frames.append(bytes(sum(current[k + j] << j for j in range(8)) for k in range(0, len(current), 8)))
            current, ones = [], 0
            i += 8
            continue
        bit = bits[i]
        i += 1
        if current is None:
            continue
        if ones == 5:
            ones = 0
            if bit == 0:
                continue  # a stuffed zero
            current = None  # six or more ones outside a flag: abort
            continue
        current.append(bit)
        ones = ones + 1 if bit else 0
    return frames


def ident_fif(text: str) -> bytes:
    """The FIF of CSI/TSI: 20 characters, space-padded, last character first."""
    return text[:20].ljust(20).encode("ascii", "replace")[::-1]


def parse_ident(fif: bytes) -> str:
    return fif[::-1].decode("ascii", "replace").strip()


@dataclass(frozen=True, slots=True)
class Rate:
    """A signalling rate: bit/s, the +FTM/+FRM modulation code, the family and the DCS rate field.

    ``code`` is the modulation for TCF (V.17: long training, e.g. 145); ``page`` the one for page data after the
    CFR (V.17: short training, e.g. 146 — what efax, HylaFAX and spandsp expect; a V.17 receiver set for short
    training loses the start of a page sent with long training). For V.29/V.27ter both are the same.
    """

    bps: int
    code: int
    family: str
    dcs: int
    page_code: int = 0

    @property
    def page(self) -> int:
        """The ``+FTM``/``+FRM`` code for page data (short training for V.17)."""
        return self.page_code or self.code


RATES = (
    Rate(14400, 145, "v17", 0x1, 146),
    Rate(12000, 121, "v17", 0x5, 122),
    Rate(9600, 96, "v29", 0x8),
    Rate(7200, 72, "v29", 0xC),
    Rate(4800, 48, "v27", 0x4),
    Rate(2400, 24, "v27", 0x0),
)
"""Fastest first: the order of fall-back after FTT."""

_DIS_FAMILIES = {0x0: {"v27"}, 0x4: {"v27"}, 0x8: {"v29"}, 0xC: {"v27", "v29"}, 0xD: {"v27", "v29", "v17"}}
_RECEIVER, _FINE, _SCAN0 = 0x004000, 0x000200, 0x00000E


@dataclass(frozen=True, slots=True)
class Caps:
    """The part of DIS/DCS we use: T.4 receiver, signalling rates (families), fine resolution; 1728 pels, MH,
    unlimited length, 0 ms scan time."""

    families: frozenset[str] = frozenset({"v27", "v29", "v17"})
    fine: bool = True
    rate: Rate | None = None
    """For a DCS: the chosen rate."""

    def dis(self) -> bytes:
        """DIS FIF on the DTE link."""
        field = max((k for k, v in _DIS_FAMILIES.items() if v <= self.families), key=lambda k: len(_DIS_FAMILIES[k]))
        return _pack(_RECEIVER | field << 10 | (_FINE if self.fine else 0) | _SCAN0)

    def dcs(self) -> bytes:
        """DCS FIF on the DTE link (``rate`` must be set)."""
        if self.rate is None:
            raise ValueError("a DCS needs a rate")
        return _pack(_RECEIVER | self.rate.dcs << 10 | (_FINE if self.fine else 0) | _SCAN0)

    @staticmethod
    def from_dis(fif: bytes) -> Caps:
        value = _unpack(fif)
        field = (value >> 10) & 0xF
        return Caps(frozenset(_DIS_FAMILIES.get(field, {"v27"})), bool(value & _FINE))

    @staticmethod
    def from_dcs(fif: bytes) -> Caps:
        value = _unpack(fif)
        field = (value >> 10) & 0xF
        rate = next((r for r in RATES if r.dcs == field), RATES[-1])
        return Caps(frozenset({rate.family}), bool(value & _FINE), rate)

    def rates(self, modem_codes: frozenset[int] | None = None) -> list[Rate]:
        """Rates both ends can use, fastest first (``modem_codes``: what ``+FTM=?`` lists)."""
        return [r for r in RATES if r.family in self.families and (modem_codes is None or r.code in modem_codes)]


def _pack(value: int) -> bytes:
    return bytes(REVERSE[(value >> s) & 0xFF] for s in (16, 8, 0))


def _unpack(fif: bytes) -> int:
    raw = (fif + b"\0\0\0")[:3]
    return (REVERSE[raw[0]] << 16) | (REVERSE[raw[1]] << 8) | REVERSE[raw[2]]


def tcf_ok(data: bytes, rate: Rate) -> bool:
    """Training check: at least 1 s worth of consecutive zero octets at ``rate``, at most 10 % non-zero."""
    if not data:
        return False
    run = best = 0
    for b in data:
        run = run + 1 if b == 0 else 0
        best = max(best, run)
    nonzero = sum(1 for b in data if b)
    return best >= rate.bps // 8 and nonzero * 10 <= len(data)


def tcf_bytes(rate: Rate) -> bytes:
    """TCF: 1.5 s of zeros at ``rate``."""
    return bytes(rate.bps * 3 // 16)

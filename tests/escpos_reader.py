"""A small ESC/POS reader for the tests: walks the byte stream as a printer would and returns the
text lines (decoded GB18030, with the size and emphasis they print at), the QR payloads, the cuts
and every command seen, ticket by ticket. A byte it does not know is an error, not text."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PrintedLine:
    text: str
    scale: int  # 2: double width (GS ! 0x11)
    bold: bool


@dataclass
class Ticket:  # what printed between two cuts
    lines: list[PrintedLine] = field(default_factory=list)
    qrs: list[str] = field(default_factory=list)


@dataclass
class Printout:
    commands: list[str] = field(default_factory=list)  # "ESC @", "FS &", "TEXT", "GS V 66 0"…
    tickets: list[Ticket] = field(default_factory=lambda: [Ticket()])
    cuts: int = 0


FIXED = {b"\x1b@": 0, b"\x1c&": 0, b"\x1c.": 0, b"\x1bE": 1, b"\x1d!": 1, b"\x1ba": 1}
NAMES = {b"\x1b": "ESC", b"\x1c": "FS", b"\x1d": "GS"}


def read_escpos(data: bytes) -> Printout:
    out, i, text, scale, bold, stored = Printout(), 0, bytearray(), 1, False, b""
    while i < len(data):
        two = data[i : i + 2]
        if two in FIXED:
            n = FIXED[two]
            arg = data[i + 2] if n else None
            out.commands.append(f"{NAMES[two[:1]]} {chr(two[1])}" + (f" {arg}" if n else ""))
            bold = bool(arg) if two == b"\x1bE" else bold
            scale = (arg & 0x0F) + 1 if two == b"\x1d!" and arg is not None else scale
            i += 2 + n
        elif two == b"\x1dV":  # GS V 66 n: feed n, partial cut
            assert data[i + 2] == 66, data[i : i + 4]
            out.commands.append(f"GS V 66 {data[i + 3]}")
            assert not text, "a cut through an unfinished line"
            out.cuts += 1
            out.tickets.append(Ticket())
            i += 4
        elif data[i : i + 3] == b"\x1d(k":  # GS ( k pL pH cn fn [params]
            length = data[i + 3] + 256 * data[i + 4]
            cn, fn, params = data[i + 5], data[i + 6], data[i + 7 : i + 5 + length]
            assert cn == 49, f"GS ( k for symbol {cn}, not QR (49)"
            out.commands.append(f"GS ( k {fn}")
            if fn == 80:  # store: m=48, then the data
                assert params[:1] == b"0"
                stored = bytes(params[1:])
            elif fn == 81:
                out.tickets[-1].qrs.append(stored.decode("ascii"))
            i += 5 + length
        elif data[i] == 0x0A:
            out.commands.append("LF")
            out.tickets[-1].lines.append(PrintedLine(text.decode("gb18030"), scale, bold))
            text = bytearray()
            i += 1
        elif data[i] >= 0x20 and data[i] != 0x7F:
            if not out.commands or out.commands[-1] != "TEXT":
                out.commands.append("TEXT")
            text.append(data[i])
            i += 1
        else:
            raise AssertionError(f"unknown byte {data[i]:#04x} at {i}: {data[i : i + 8]!r}")
    assert not text, "text after the last line feed"
    last = out.tickets.pop()  # after the last cut: nothing
    assert not last.lines and not last.qrs, "something printed after the last cut"
    return out

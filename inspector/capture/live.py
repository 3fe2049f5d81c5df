"""Live capture from a Linux packet socket into a pcap or pcapng file.

The only module that imports scapy, and only for two things: its layer-2
listening socket (``L2ListenSocket``: an ``AF_PACKET``/``SOCK_RAW`` socket
bound to the interface, with kernel timestamps and auxiliary data switched on)
and its filter compiler (``compile_filter``, which asks libpcap for the BPF
bytecode of a tcpdump expression).  Packets are read as raw bytes with
``recvmsg_into`` into one reused buffer and go straight to a streaming writer:
no scapy ``Packet`` is ever built and nothing is kept per packet.

The BPF program runs in the kernel (``SO_ATTACH_FILTER``), so unwanted packets
never reach Python.  Three things are added to what libpcap compiles, as
libpcap itself does when tcpdump captures:

- On ``lo`` the kernel hands a packet socket every packet twice: once going
  out (``PACKET_OUTGOING``) and once coming in.  A short prefix drops the
  outgoing copy in the kernel, so each packet is written once, the incoming
  copy, as tcpdump does.
- libpcap compiles ``ret #65535`` as scapy asks for; the returns are raised to
  the snap length, or full 65,536-byte loopback segments would be cut.
- The ``any`` pseudo-interface (and any interface that is not Ethernet-like)
  is captured in "cooked" mode (``SOCK_DGRAM``): the kernel gives the packet
  from its network header on, and we write a 16-byte Linux cooked (SLL, link
  type 113) header built from the socket address.  The filter is compiled for
  SLL and its offsets are moved into the network header, the packet-type and
  protocol fields becoming the kernel's ancillary loads.

Timestamps are the kernel's (``SO_TIMESTAMPNS``), in nanoseconds; files are
written with nanosecond resolution.  Kernel drops come from
``PACKET_STATISTICS`` (``tp_drops``), which resets on each read, so they are
added up.
"""

from __future__ import annotations

import ctypes
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from inspector.capture.writers import DEFAULT_SNAPLEN, open_writer
from inspector.errors import CaptureError

LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113
SLL_HEADER_LEN = 16

# <linux/if_ether.h>, <linux/if_packet.h>, <asm-generic/socket.h>, <linux/filter.h>
ETH_P_ALL = 0x0003
ETH_P_8021Q = 0x8100
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
SOL_PACKET = 263
PACKET_OUTGOING = 4
PACKET_STATISTICS = 6
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
SKF_AD_OFF = -0x1000
SKF_AD_PROTOCOL = 0
SKF_AD_PKTTYPE = 4
SKF_AD_IFINDEX = 8

# Classic BPF opcodes (<linux/bpf_common.h>).
BPF_LD, BPF_LDX, BPF_RET, BPF_JMP = 0x00, 0x01, 0x06, 0x05
BPF_W, BPF_ABS, BPF_IND, BPF_MSH, BPF_K, BPF_JEQ = 0x00, 0x20, 0x40, 0xA0, 0x00, 0x10

RECEIVE_BUFFER_BYTES = 64 << 20  # kernel queue for bursts (tcpdump's tests use -B 65536 KiB too)
POLL_INTERVAL_S = 0.2
PROGRESS_INTERVAL_S = 1.0
STOP_DRAIN_S = 2.0
BATCH = 1024

_AUXDATA = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata
_TIMESPEC = struct.Struct("=qq")
_STATS = struct.Struct("=II")  # struct tpacket_stats
_ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(_AUXDATA.size)
_SLL_HEAD = struct.Struct("!HHH")

Instruction = tuple[int, int, int, int]  # code, jt, jf, k


@dataclass
class CaptureStats:
    """Where a capture stands: packets and wire bytes written, kernel drops, seconds since start."""

    packets: int
    bytes: int
    kernel_drops: int | None
    elapsed_s: float


def list_interfaces() -> list[str]:
    """Interface names in kernel order, then the ``any`` pseudo-interface."""
    return [name for _, name in socket.if_nameindex()] + ["any"]


def filter_expression(ports: Sequence[int] = (), bpf_filter: str | None = None) -> str | None:
    """``tcp port A or tcp port B`` for `ports`, combined with `bpf_filter` by ``and``."""
    parts = []
    if ports:
        parts.append(" or ".join(f"tcp port {int(p)}" for p in ports))
    if bpf_filter and bpf_filter.strip():
        parts.append(bpf_filter.strip())
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return " and ".join(f"({p})" for p in parts)


class LiveCapture:
    """Capture packets from `interface` into `output` on a background thread.

    ``start()`` returns once the socket is bound with its filter attached, so
    every matching packet sent afterwards ends up in the file.  The capture
    ends by itself after `count` packets or `duration` seconds, or on
    ``stop()``, which also writes out what the kernel still queues and closes
    the file.  (Packets the kernel sends later on its own, such as delayed
    ACKs about 40 ms after the data, need a short wait before ``stop()``.)
    `on_progress` is called on the capture thread about once a second, and
    once at the end; an exception from it ends the capture and is raised by
    ``stop()``.  ``stats.bytes`` counts wire bytes (tshark's ``frame.len``).
    """

    def __init__(
        self,
        output: str | Path,
        *,
        interface: str = "lo",
        ports: Sequence[int] = (),
        bpf_filter: str | None = None,
        count: int | None = None,
        duration: float | None = None,
        snaplen: int = DEFAULT_SNAPLEN,
        on_progress: Callable[[CaptureStats], None] | None = None,
    ) -> None:
        for port in ports:
            if not 0 < int(port) < 65536:
                raise CaptureError(f"port {port} is not between 1 and 65535")
        if count is not None and count <= 0:
            raise CaptureError(f"packet count must be positive, not {count}")
        if duration is not None and duration <= 0:
            raise CaptureError(f"duration must be positive, not {duration}")
        if snaplen <= 0:
            raise CaptureError(f"snap length must be positive, not {snaplen}")
        self.output = Path(output)
        self.interface = interface
        self.filter = filter_expression(ports, bpf_filter)
        self.count = count
        self.duration = duration
        self.snaplen = snaplen
        self.link_type: int | None = None
        self._on_progress = on_progress
        self._sock: socket.socket | None = None
        self._closer: Callable[[], None] | None = None
        self._writer = None
        self._thread: threading.Thread | None = None
        self._stop_requested = threading.Event()
        self._done = threading.Event()
        self._wake_r, self._wake_w = -1, -1
        self._packets = 0
        self._bytes = 0
        self._drops: int | None = None
        self._started = 0.0
        self._ended: float | None = None
        self._error: BaseException | None = None
        self._stopped = False

    # --- public API -------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None or self._stopped:
            raise CaptureError("a LiveCapture can be started only once")
        cooked, ifindex, lo_index = self._resolve_interface()
        _check_privileges()
        self.link_type = LINKTYPE_LINUX_SLL if cooked else LINKTYPE_ETHERNET
        program = self._program(cooked, ifindex, lo_index)
        self._open_socket(cooked, program)
        try:
            self._writer = open_writer(self.output, self.link_type, self.snaplen, nanosecond=True, if_name=self.interface)
        except BaseException:
            self._close_socket()
            raise
        self._wake_r, self._wake_w = os.pipe()
        self._read_drops(reset=True)  # counters start at zero from here on
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, args=(cooked,), name="live-capture", daemon=True)
        self._thread.start()

    def stop(self) -> CaptureStats:
        """Stop, write out what is queued, close the file; idempotent."""
        if self._stopped:
            return self.stats
        self._stopped = True
        if self._thread is None:
            self._done.set()
            return self.stats
        self._stop_requested.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        self._thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self._error is not None:
            error, self._error = self._error, None
            if isinstance(error, CaptureError):
                raise error
            raise CaptureError(f"live capture on {self.interface} failed: {error}") from error
        return self.stats

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the capture has ended (count or duration reached, stopped, or failed)."""
        return self._done.wait(timeout)

    @property
    def stats(self) -> CaptureStats:
        end = self._ended if self._ended is not None else time.monotonic()
        elapsed = end - self._started if self._started else 0.0
        return CaptureStats(self._packets, self._bytes, self._drops, elapsed)

    def __enter__(self) -> LiveCapture:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- setting up ---------------------------------------------------------------

    def _resolve_interface(self) -> tuple[bool, int, int]:
        """(cooked mode?, interface index or 0 for any, index of lo or -1)."""
        indexes = {name: index for index, name in socket.if_nameindex()}
        lo_index = -1
        for name, index in indexes.items():
            if _hardware_type(name) == ARPHRD_LOOPBACK:
                lo_index = index
                break
        if self.interface == "any":
            return True, 0, lo_index
        if self.interface not in indexes:
            raise CaptureError(f"no interface {self.interface!r}; interfaces: {', '.join(list_interfaces())}")
        hatype = _hardware_type(self.interface)
        return hatype not in (ARPHRD_ETHER, ARPHRD_LOOPBACK), indexes[self.interface], lo_index

    def _program(self, cooked: bool, ifindex: int, lo_index: int) -> list[Instruction]:
        """The user's filter compiled by libpcap, adapted for the kernel, behind the lo prefix."""
        body: list[Instruction]
        if self.filter is None:
            body = [(BPF_RET | BPF_K, 0, 0, self.snaplen)]
        else:
            body = _compile(self.filter, LINKTYPE_LINUX_SLL if cooked else LINKTYPE_ETHERNET)
            body = [_fix_return(ins, self.snaplen) for ins in body]
            if cooked:
                fixed = [_fix_cooked(ins) for ins in body]
                if None in fixed:
                    raise CaptureError(
                        f"capture filter {self.filter!r} looks at link-layer header fields, which the kernel "
                        f"cannot filter on for interface {self.interface!r}"
                    )
                body = fixed  # type: ignore[assignment]
        load_pkttype = (BPF_LD | BPF_W | BPF_ABS, 0, 0, (SKF_AD_OFF + SKF_AD_PKTTYPE) & 0xFFFFFFFF)
        drop = (BPF_RET | BPF_K, 0, 0, 0)
        if ifindex and ifindex == lo_index:
            # Outgoing copy on lo: drop it.
            prefix = [load_pkttype, (BPF_JMP | BPF_JEQ | BPF_K, 0, 1, PACKET_OUTGOING), drop]
        elif ifindex == 0 and lo_index > 0:
            # `any`: drop outgoing packets only when they are on lo.
            prefix = [
                load_pkttype,
                (BPF_JMP | BPF_JEQ | BPF_K, 0, 3, PACKET_OUTGOING),
                (BPF_LD | BPF_W | BPF_ABS, 0, 0, (SKF_AD_OFF + SKF_AD_IFINDEX) & 0xFFFFFFFF),
                (BPF_JMP | BPF_JEQ | BPF_K, 0, 1, lo_index),
                drop,
            ]
        else:
            prefix = []
        return prefix + body

    def _open_socket(self, cooked: bool, program: list[Instruction]) -> None:
        try:
            if cooked:
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
                closer = sock.close
            else:
                listener = _listen_socket(self.interface)
                sock, closer = listener.ins, listener.close
        except PermissionError:
            raise CaptureError("live capture needs root or CAP_NET_RAW") from None
        except OSError as exc:
            raise CaptureError(f"cannot capture on {self.interface!r}: {exc.strerror or exc}") from None
        self._sock, self._closer = sock, closer
        try:
            _attach(sock, program)
            if cooked:
                sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                if self.interface != "any":
                    sock.bind((self.interface, ETH_P_ALL))
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER_BYTES)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
            # Whatever was queued before the filter was attached is not ours.
            _drain(sock)
        except OSError as exc:
            self._close_socket()
            raise CaptureError(f"cannot capture on {self.interface!r}: {exc.strerror or exc}") from None

    def _close_socket(self) -> None:
        if self._closer is not None:
            self._closer()
        self._sock = self._closer = None

    def _read_drops(self, reset: bool = False) -> None:
        """Add the kernel's drops since the last read (the kernel zeroes its counters on each read)."""
        if self._sock is None:
            return
        try:
            raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size)
        except OSError:
            return
        _packets, drops = _STATS.unpack(raw)
        self._drops = 0 if reset else (self._drops or 0) + drops

    # --- the capture thread -----------------------------------------------------

    def _run(self, cooked: bool) -> None:
        try:
            self._loop(cooked)
        except BaseException as exc:  # reported by stop()
            self._error = exc
        finally:
            try:
                self._read_drops()
                self._writer.close()  # type: ignore[union-attr]
            except BaseException as exc:
                self._error = self._error or exc
            self._close_socket()
            self._ended = time.monotonic()
            if self._on_progress is not None:
                try:
                    self._on_progress(self.stats)
                except Exception as exc:
                    self._error = self._error or exc
            self._done.set()

    def _loop(self, cooked: bool) -> None:
        sock = self._sock
        assert sock is not None and self._writer is not None
        write = self._writer.write
        flush = self._writer.flush
        buf = bytearray(self.snaplen)
        view = memoryview(buf)
        buffers = [view[SLL_HEADER_LEN:]] if cooked else [view]
        recv = sock.recvmsg_into
        unpack_ts = _TIMESPEC.unpack
        unpack_aux = _AUXDATA.unpack
        pack_sll = _SLL_HEAD.pack_into
        time_ns = time.time_ns
        monotonic = time.monotonic
        dontwait = socket.MSG_DONTWAIT
        sol_socket = socket.SOL_SOCKET
        count = self.count
        deadline = self._started + self.duration if self.duration is not None else None
        next_progress = self._started + PROGRESS_INTERVAL_S
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        stopping_at: float | None = None
        packets, nbytes = self._packets, self._bytes

        while True:
            now = monotonic()
            if stopping_at is None and self._stop_requested.is_set():
                stopping_at = now + STOP_DRAIN_S
            if stopping_at is None and deadline is not None and now >= deadline:
                stopping_at = now + STOP_DRAIN_S  # write out what arrived in time, then end
            if now >= next_progress:
                next_progress = now + PROGRESS_INTERVAL_S
                self._read_drops()
                if self._on_progress is not None:
                    self._on_progress(self.stats)
            if stopping_at is None:
                timeout = POLL_INTERVAL_S
                if deadline is not None:
                    timeout = min(timeout, max(deadline - now, 0.0))
                if not poller.poll(timeout * 1000):
                    flush()
                    continue
            # Drain what is queued, a batch at a time.
            got = 0
            while got < BATCH:
                try:
                    n, ancillary, _flags, addr = recv(buffers, _ANCILLARY_BYTES, dontwait)
                except (BlockingIOError, InterruptedError):
                    break
                ts = 0
                wire = n
                vlan = None
                for level, kind, data in ancillary:
                    if level == sol_socket:
                        if kind == SCM_TIMESTAMPNS:
                            sec, nsec = unpack_ts(data)
                            ts = sec * 1_000_000_000 + nsec
                    elif level == SOL_PACKET and kind == PACKET_AUXDATA:
                        status, wire, _snap, _mac, _net, tci, tpid = unpack_aux(data)
                        if tci or status & TP_STATUS_VLAN_VALID:
                            vlan = (tpid if status & TP_STATUS_VLAN_TPID_VALID else ETH_P_8021Q, tci)
                if not ts:
                    ts = time_ns()
                if cooked:
                    # addr: (ifname, protocol, pkttype, hatype, hardware address)
                    hw = addr[4]
                    pack_sll(buf, 0, addr[2], addr[3], len(hw))
                    buf[6:14] = hw[:8].ljust(8, b"\0")
                    buf[14:16] = addr[1].to_bytes(2, "big")
                    n += SLL_HEADER_LEN
                    wire += SLL_HEADER_LEN
                if vlan is None:
                    write(ts, view[:n], wire)
                else:
                    at = 14 if cooked else 12
                    write(ts, bytes(view[:at]) + struct.pack("!HH", *vlan) + bytes(view[at:n]), wire + 4)
                packets += 1
                nbytes += wire
                got += 1
                if count is not None and packets >= count:
                    break
            self._packets, self._bytes = packets, nbytes
            if count is not None and packets >= count:
                break
            if stopping_at is not None and (got < BATCH or monotonic() >= stopping_at):
                break  # queue drained after a stop request
        flush()


def _hardware_type(name: str) -> int | None:
    try:
        with open(f"/sys/class/net/{name}/type") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def _check_privileges() -> None:
    """Packet sockets need CAP_NET_RAW; a socket for protocol 0 receives nothing, so it is a cheap probe."""
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
    except PermissionError:
        raise CaptureError("live capture needs root or CAP_NET_RAW") from None
    except OSError as exc:
        raise CaptureError(f"live capture is not available here: {exc.strerror or exc}") from None


def _import_error(exc: ImportError) -> CaptureError:
    return CaptureError(f"live capture needs scapy and libpcap, which cannot be loaded: {exc}")


def _listen_socket(interface: str):
    """scapy's L2ListenSocket on `interface`, bound, no filter, not promiscuous.

    scapy warns that it cannot pick a Packet class for the link layer when its
    layers are not loaded; we never build Packets, so that warning is muted
    while the socket is made.
    """
    import logging

    try:
        from scapy.arch.linux import L2ListenSocket
    except ImportError as exc:
        raise _import_error(exc) from None

    log = logging.getLogger("scapy.runtime")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        return L2ListenSocket(iface=interface, promisc=False)
    finally:
        log.setLevel(level)


def _compile(expression: str, link_type: int) -> list[Instruction]:
    """BPF bytecode for a tcpdump expression, from libpcap (through scapy)."""
    try:
        from scapy.arch.common import compile_filter, free_filter
        from scapy.error import Scapy_Exception
    except ImportError as exc:
        raise _import_error(exc) from None

    try:
        program = compile_filter(expression, linktype=link_type)
    except Scapy_Exception as exc:
        reason = str(exc)
        if "(" in reason and reason.endswith(")"):
            reason = reason[reason.index("(") + 1 : -1]
        raise CaptureError(f"bad capture filter {expression!r}: {reason}") from None
    except (ImportError, OSError) as exc:
        raise CaptureError(f"cannot compile capture filter {expression!r}: {exc}") from None
    try:
        return [(ins.code, ins.jt, ins.jf, ins.k) for ins in program.bf_insns[: program.bf_len]]
    finally:
        free_filter(program)


def _fix_return(ins: Instruction, snaplen: int) -> Instruction:
    code, jt, jf, k = ins
    if code == BPF_RET | BPF_K and k:
        return code, jt, jf, snaplen
    return ins


def _fix_cooked(ins: Instruction) -> Instruction | None:
    """Move a load compiled for an SLL header onto a cooked socket's packet (libpcap's fix_offset)."""
    code, jt, jf, k = ins
    if code & 0x07 not in (BPF_LD, BPF_LDX) or code & 0xE0 not in (BPF_ABS, BPF_IND, BPF_MSH):
        return ins
    if k >= 0x80000000:
        return ins  # already an ancillary load (negative offset)
    if k >= SLL_HEADER_LEN:
        return code, jt, jf, k - SLL_HEADER_LEN
    if k == 0:
        return code, jt, jf, (SKF_AD_OFF + SKF_AD_PKTTYPE) & 0xFFFFFFFF
    if k == 14:
        return code, jt, jf, (SKF_AD_OFF + SKF_AD_PROTOCOL) & 0xFFFFFFFF
    return None


def _attach(sock: socket.socket, program: list[Instruction]) -> None:
    """SO_ATTACH_FILTER: a struct sock_fprog pointing at the instructions."""
    raw = b"".join(struct.pack("=HBBI", *ins) for ins in program)
    instructions = ctypes.create_string_buffer(raw, len(raw))
    fprog = struct.pack("HP", len(program), ctypes.addressof(instructions))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def _drain(sock: socket.socket) -> None:
    while True:
        try:
            sock.recv(65536, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return

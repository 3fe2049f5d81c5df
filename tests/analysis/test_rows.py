"""analysis/rows.py: the rows take the client side from the parser."""

from __future__ import annotations

from inspector.analysis.pipeline import analyze_captures
from tests.factories import pcap_file, tcp_frame

ACK = 0x10
SERVER, CLIENT = ("10.0.0.1", 80), ("10.0.0.2", 50000)


def test_without_syn_or_payload_the_higher_port_is_the_client(tmp_path):
    """Bare ACKs, the server's first: no SYN, no request, nothing for the parser to go by
    but the ports the pipeline hints with; the connections row and the finding agree."""
    path = tmp_path / "bare-acks.pcap"
    path.write_bytes(pcap_file([(1_000, tcp_frame(SERVER, CLIENT, 5000, 1000, ACK)), (2_000, tcp_frame(CLIENT, SERVER, 1000, 5000, ACK))]))
    analysis = analyze_captures([path], jobs=1)
    [row] = analysis["connections"].to_dict("records")
    assert (row["client_ip"], row["client_port"], row["server_ip"], row["server_port"]) == ("10.0.0.2", 50000, "10.0.0.1", 80)
    assert analysis["findings"]["rule"].tolist() == ["tcp-client-guessed"]

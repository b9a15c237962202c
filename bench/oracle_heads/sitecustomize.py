"""The baseline node of ``bench/test_bench_request_heads.py``: on ``PYTHONPATH`` (supervisor and
workers alike inherit it) this puts the pure-Python request-head parsers of
``tests/oracles/request_heads.py`` back where the inbounds call the compiled ones, so one tree
measures before and after in the same run.  Says so on stderr (the node's log), which the
benchmark checks, so a baseline that silently ran compiled code cannot pass for one."""
import sys


def _put_back() -> None:
    from fastpath.inbounds import trojan, trojan_ws, vless, vless_header
    from fastpath.proxy import socks5
    from tests.oracles import request_heads as oracle

    def parse_vless(head):
        found = oracle.vless_request(head)
        if found is None:
            return None
        *request, end = found
        return vless_header.VlessRequest(*request), end

    socks5.decode_address = oracle.socks_address
    vless.parse_request = parse_vless
    trojan.parse_request = trojan_ws.parse_request = oracle.trojan_request
    trojan._could_be_hash = oracle.could_be_hash
    print("fastpath bench: pure-Python request heads", file=sys.stderr, flush=True)


_put_back()

# A stand-in for systemd's notify socket, for tests: binds a UNIX datagram socket at argv[1] (a path, or
# @name in the abstract namespace; Node has no datagram UNIX sockets), prints "ready", then each datagram
# it receives as one JSON string per line.
import json
import socket
import sys

address = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + address[1:] if address.startswith("@") else address)
print("ready", flush=True)
while True:
    print(json.dumps(s.recv(65536).decode()), flush=True)

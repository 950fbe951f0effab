// Package broker lets an unprivileged process obtain a configured TUN/TAP
// device from a privileged daemon over a Unix socket.
//
// A Server runs as root (or with CAP_NET_ADMIN and CAP_CHOWN), listens on a
// Unix socket (DefaultSocketPath), and for every authorized connection
// decodes one create request, checks it against a Policy, creates the
// device with an injected CreateFunc (tundra.BrokerCreate in cmd/tundra-server),
// and hands the
// device's queue descriptors back with SCM_RIGHTS. The server closes its own
// copies at once: the device lives exactly as long as the client holds a
// descriptor of it.
//
// A Client is the other side: it dials the socket, sends the request,
// receives the descriptors and checks them.
//
// # Security model
//
//   - The socket is created with its final owner, group and mode before its
//     name appears: it is bound inside a private 0700 directory, chowned and
//     chmodded there, then renamed into place.
//   - Every connection is authorized from the kernel's record of the peer:
//     SO_PEERCRED (uid, gid, pid) and SO_PEERGROUPS (supplementary groups),
//     both taken when the client called connect. Root is always allowed;
//     otherwise the peer's primary or a supplementary group must be the
//     configured group. The pid is logged, never trusted.
//   - An unauthorized peer is answered and dropped before a byte of its
//     request is parsed.
//   - Members are limited by a Policy: which address prefixes they may
//     claim (by default unique-local and IPv6 link-local only, no wider
//     than a /48, never a prefix that overlaps another interface's address
//     or a destination the host routes in any table), which interface
//     names (always plain ASCII), which MTU range, how many queues, TAP or
//     not, and how many live devices per uid.
//   - A device belongs to its member from birth (TUNSETOWNER) and carries
//     the server's mark (its alias). The server follows link events and
//     deletes a marked device made persistent or given another owner or a
//     group; a restarted server finds its marked devices again.
//     Root is not subject to the policy, since it could do the same without
//     the broker.
//   - Every byte a client sends is treated as hostile: frames have a hard
//     size cap checked before anything is allocated, every field is bounds
//     checked, descriptors sent to the server are never installed, and each
//     connection has a total deadline, so a slow or silent client is dropped.
//   - Connections are limited overall and per uid; a connection over a limit
//     is answered with StatusBusy from the accept loop with one non-blocking
//     write, so the loop itself never waits on a client.
//   - One log/slog audit record per connection says who asked (uid, gid,
//     pid), what, what was done, and why a request was refused; repeated
//     refusals of one uid are summarised (Config.RefusalWindow).
//
// The wire protocol is specified in PROTOCOL.md beside this file. The
// Server also serves, on the same socket, the client protocol of the Elixir
// Tundra library (written for that library's own C daemon), under the same
// checks; PROTOCOL.md says how the two are told apart.
//
// # Threads and namespaces
//
// Devices are created in the network namespace of the thread that runs the
// CreateFunc. tundra.BrokerCreate locks its goroutine to one thread for the
// whole sequence, so in an ordinary single-namespace daemon every device
// lands in the daemon's namespace.
package broker

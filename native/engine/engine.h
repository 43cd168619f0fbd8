#pragma once
// The data plane: an event thread that owns every device link, connection and
// handed-over client socket. JS calls the public methods on its own thread;
// they check what they can at once and post the rest to the event thread.
//
// Where each part lives:
//   engine.cc         lifecycle, cable links, device open/close
//   connections.cc    connect, client fds, and the mux::SessionObserver side
//   usb_host.cc       libusb: the context and opening discovered phones
//   ffs_functions.cc  the device role on a USB gadget (FunctionFS)
//   snapshot.cc       the stats snapshot
//   splices.cc        Connects to phones on the network (client fd <-> TCP fd),
//                     and remote usbmux over TLS (dial, serve)
//
// Ownership: the maps below hold the only long-lived references. Everything
// in them is made with loop_.makeRetiring(), so erasing an entry on the event
// thread (even from inside the object's own callback) frees it at the end of
// the turn, never in the middle of one.
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/acceptor.h"
#include "core/buffers.h"
#include "core/capture_tap.h"
#include "core/event_loop.h"
#include "core/stats.h"
#include "engine/capture_writer.h"
#include "engine/client_door.h"
#include "engine/device_link.h"
#include "engine/device_role.h"
#include "engine/events.h"
#include "engine/snapshot.h"
#include "engine/socket_splice.h"
#include "mux/device_session.h"
#include "tunnel/stack.h"
#include "tunnel/tunnel.h"
#include "usb/cable.h"
#include "usb/ffs_function.h"
#include "usb/libusb_context.h"
#include "usb/libusb_open.h"

namespace tsmuxd::engine {

// Remote usbmux's mutual TLS (docs/remote.md): this end's PEM certificate
// and key, and the CA the peer's certificate must chain to.
struct RemoteTls {
  std::string certPem;
  std::string keyPem;
  std::string caPem;
};

class Engine : public mux::SessionObserver, public tunnel::TunnelObserver {
 public:
  explicit Engine(EventSink& sink);
  ~Engine() override;

  void start();
  void stop();
  EngineStats& stats() { return stats_; }

  // ---- called from JS; errors come back in `error` ----
  uint32_t listenCable(const std::string& path, std::string& error);
  void closeListener(uint32_t id);
  void openDevice(uint32_t handle, uint32_t window, uint16_t maxPacketSize, uint64_t zeroWindowTimeoutMs);
  // `unplugged`: discovery saw the device go; no RSTs are sent to it.
  void closeDevice(uint32_t handle, bool unplugged = false);
  // libusb: once per engine; false with `error` when there is no USB here.
  bool startUsb(std::string& error);
  // Opens a phone discovery found; its `attached` (or `detached` with the
  // reason it could not be opened) follows as an event.
  uint32_t openUsb(const usb::UsbOpenRequest& request);
  uint32_t connect(uint32_t handle, uint16_t port, uint64_t timeoutMs);
  // connect() with the client's socket handed over at once: when the device
  // accepts, the event thread writes `greeting` (the usbmuxd Result, built
  // by JS) to the socket and starts pumping, with no turn through JS in
  // between. With ClientFd::Duplicate (a session's socket, which JS still
  // holds) we work on a duplicate, Connected and ConnectFailed reach JS, and
  // a failure closes the duplicate. With ClientFd::Take (a front-door client
  // JS holds no socket for) the fd is ours from the call; only a failure
  // reaches JS, giving the fd back in the ConnectFailed event. 0 with `error`
  // when the fd cannot be duplicated.
  enum class ClientFd { Duplicate, Take };
  uint32_t connectClient(uint32_t handle, uint16_t port, uint64_t timeoutMs, int fd,
                         std::vector<uint8_t> pipelined, std::vector<uint8_t> greeting,
                         ClientFd mode, std::string& error);
  bool attachClient(uint32_t conn, int fd, std::vector<uint8_t> pipelined, std::string& error);
  // A client's socket joined to the daemon's TCP connection to a phone on
  // the network (splices.cc): both fds are duplicated (JS closes its own),
  // `toPhone` / `toClient` go first each way. The id is a connection id:
  // closeConnection() ends it and a Closed event reports its end. 0 with
  // `error` when an fd cannot be duplicated.
  uint32_t spliceSockets(int clientFd, std::vector<uint8_t> toPhone, int phoneFd, std::vector<uint8_t> toClient,
                         std::string& error);
  // Remote usbmux, the consuming side: a TCP socket JS connected to a remote
  // host (`tls` null: plain, --insecure). The handshake runs, `request` (a
  // Connect) goes out, and the remote's answer comes back as a RemoteReply
  // event; then attachDialled() joins the client (JS wrote its Result) or
  // closeConnection() ends it. A failure is a Closed event saying why.
  uint32_t dialRemote(int farFd, const RemoteTls* tls, std::vector<uint8_t> request, std::string& error);
  bool attachDialled(uint32_t conn, int clientFd, std::vector<uint8_t> pipelined, std::string& error);
  // Remote usbmux, the serving side: a remote client's TCP socket, its TLS
  // terminated here; `localFd` (JS's) is the other end of a socketpair that
  // the usbmuxd server serves as a client. RemoteSecure says who it is once
  // the handshake is done; Closed says why it ended (a refused certificate).
  uint32_t serveRemote(int farFd, const RemoteTls& tls, int& localFd, std::string& error);
  // A splice whose far end is lost (a remote host gone): SocketSplice::farGone.
  void spliceFarGone(uint32_t conn, std::string reason);
  void closeConnection(uint32_t conn);
  // The usbmuxd socket's front door (client_door.h) on a new Unix socket at
  // `path`; clients arrive as ClientArrived events. 0 with `error`.
  uint32_t openClientDoor(const std::string& path, int backlog, std::string& error);
  void closeClientDoor(uint32_t door);
  uint32_t attachDeviceRole(const std::string& cablePath, const usb::CableDescriptor& descriptor,
                            const DeviceRoleOptions& options, std::string& error);
  // Device role: adds (or, without a target, removes) one port mapping.
  void mapDevicePort(uint32_t handle, uint16_t port, std::optional<LocalTarget> target);
  // Device role over a mounted FunctionFS: writes the mux interface's
  // descriptors now (errors come back at once), then runs one session per
  // ENABLE under the returned handle until closeDevice().
  uint32_t attachDeviceRoleFfs(const std::string& dir, const DeviceRoleOptions& options,
                               std::string& error);
  // Every link and connection as the event thread sees them between two
  // turns, delivered as a Snapshot event carrying `requestId`. The JS thread
  // never waits for it. False if the engine is not running.
  bool requestSnapshot(uint32_t requestId);
  // A FunctionFS function that only shows an interface to the host (a phone's
  // PTP, audio or network interface around the mux), held until closeDevice().
  uint32_t attachFfsPlaceholder(const std::string& dir, const usb::FfsInterfaceSpec& spec,
                                std::string& error);
  // Runs `service` on the event thread until the engine stops (the sim's
  // measuring listeners, opened by the caller on loop()).
  void host(std::shared_ptr<HostedService> service);

  // ---- tunnels (tunnels.cc); results come back as events ----
  // Host: CoreDeviceProxy on a connected connection that has no client yet.
  uint32_t startTunnel(uint32_t conn, std::string certPem, std::string keyPem, std::string request);
  void configureTunnel(uint32_t tunnel, tunnel::TunnelConfig config);
  uint32_t tunnelConnect(uint32_t tunnel, const ip6_addr_t& address, uint16_t port, uint64_t timeoutMs);
  bool attachTunnelClient(uint32_t stream, int fd, std::vector<uint8_t> pipelined, std::string& error);
  uint16_t listenTunnelPreamble(uint32_t tunnel, const std::string& host, uint16_t port, std::string& error);
  // Host, after configureTunnel: a kernel TUN interface for the tunnel, made
  // here on the caller's thread (so a failure is the caller's to report and
  // fall back from) and handed to the tunnel; false with `error` if the
  // kernel refused.
  bool openTunnelInterface(uint32_t tunnel, const tunnel::TunSetup& setup, std::string& name, std::string& error);
  void closeTunnel(uint32_t tunnel);
  // Device role: a port target that serves CoreDeviceProxy with this identity.
  std::shared_ptr<InProcessService> tunnelService(std::string certPem, std::string keyPem);
  // Event thread: a device-role CoreDeviceProxy connection arrived.
  void serveTunnel(const std::shared_ptr<mux::Connection>& conn, const std::string& certPem,
                   const std::string& keyPem);

  // ---- captures (captures.cc, docs/capture.md) ----
  // Writes pcapng of what `filter` selects to `fd` (duplicated: the caller
  // closes its own) until stopCapture(), or until the output ends (a
  // CaptureEnded event says why either way). 0 with `error`.
  uint32_t startCapture(int fd, core::CaptureFilter filter, size_t ringBytes, std::string application,
                        std::string& error);
  void stopCapture(uint32_t id, std::string reason);
  // A device handle now also in capture `id` (a --udid capture's phone, replugged).
  void addCaptureDevice(uint32_t id, uint32_t handle);
  // What names `handle` in the captures (its UDID).
  void captureLabel(uint32_t handle, std::string text);
  // A key log line of a TLS session JS runs: in the captures before the next packet.
  void captureSecret(std::string line);
  bool captureRunning() const { return captureTap_.running(); }

  // tunnel::TunnelObserver (tunnels.cc)
  void onTunnelHandshake(tunnel::Tunnel& t, const std::string& body) override;
  void onTunnelClosed(tunnel::Tunnel& t, const char* code, const std::string& reason) override;
  void onTunnelLog(tunnel::Tunnel& t, const char* level, const std::string& text) override;
  void onStreamConnected(tunnel::Tunnel& t, uint32_t stream) override;
  void onStreamConnectFailed(tunnel::Tunnel& t, uint32_t stream, const char* code, const std::string& reason) override;
  void onStreamClosed(tunnel::Tunnel& t, uint32_t stream, const std::string& reason, uint64_t bytesIn,
                      uint64_t bytesOut) override;

  // ---- event thread ----
  core::EventLoop& loop() { return loop_; }
  core::BufferPool& pool() { return pool_; }
  void emit(NativeEvent ev) { sink_.emit(std::move(ev)); }
  void linkClosed(DeviceLink& link, const Fault& why);

  // mux::SessionObserver (connections.cc)
  void onSessionReady(mux::DeviceSession& s, int version) override;
  void onSessionLog(mux::DeviceSession& s, mux::LogLevel level, const std::string& text) override;
  void onSessionFailed(mux::DeviceSession& s, const Fault& why) override;
  void onIncomingConnection(mux::DeviceSession& s,
                            const std::shared_ptr<mux::Connection>& conn) override;
  void onConnected(mux::Connection& c) override;
  void onConnectFailed(mux::Connection& c, const char* code, const std::string& reason) override;
  void onConnectionClosed(mux::Connection& c, const std::string& reason) override;
  void onConnectionLog(mux::Connection& c, const std::string& text) override;

 private:
  // A client socket waiting for its connection's SYN-ACK (connectClient).
  // Owns the duplicate fd until a pump takes it; erasing the entry closes it.
  struct WaitingClient {
    int fd = -1;
    std::vector<uint8_t> pipelined;
    std::vector<uint8_t> greeting;
    ClientFd mode = ClientFd::Duplicate;
    WaitingClient(int f, std::vector<uint8_t> p, std::vector<uint8_t> g, ClientFd m)
        : fd(f), pipelined(std::move(p)), greeting(std::move(g)), mode(m) {}
    WaitingClient(WaitingClient&& o) noexcept
        : fd(std::exchange(o.fd, -1)), pipelined(std::move(o.pipelined)), greeting(std::move(o.greeting)), mode(o.mode) {}
    WaitingClient(const WaitingClient&) = delete;
    WaitingClient& operator=(const WaitingClient&) = delete;
    WaitingClient& operator=(WaitingClient&&) = delete;
    ~WaitingClient();
  };

  struct FfsEntry {
    std::shared_ptr<usb::FfsFunction> function;
    DeviceRoleOptions options;
    bool sessions = true;  // false: a placeholder, events are only logged
  };

  void acceptCable(int fd);
  void usbOpened(uint32_t handle, const usb::UsbOpenRequest& request,
                 std::unique_ptr<usb::LibusbDevice> device,
                 std::shared_ptr<usb::CableDescriptor> descriptor, const Fault& fault);
  void startDeviceSession(uint32_t handle, std::unique_ptr<usb::Transport> transport,
                          const DeviceRoleOptions& options);
  void startFfs(std::shared_ptr<usb::FfsFunction> function, uint32_t handle,
                const DeviceRoleOptions& options, bool sessions);
  void onFfsEvent(uint32_t handle, usb::FfsFunction::Event e, const std::string& detail);
  void closeFfs(uint32_t handle);
  void emitLog(uint32_t handle, const char* level, std::string text);
  void forgetConnection(mux::Connection& c);
  // A ConnectFailed event for `conn`, carrying back the fd of a client
  // connectClient() took (-1 if none).
  void emitConnectFailed(uint32_t handle, uint32_t conn, std::string code, std::string reason, int fd);
  // The event-thread half of connect() / connectClient().
  void openConnection(uint32_t id, uint32_t handle, uint16_t port, uint64_t timeoutMs,
                      std::shared_ptr<WaitingClient> client);
  // Binds a client socket (our own fd) to a connection that has none yet.
  void pumpClient(mux::Connection& conn, int fd, std::vector<uint8_t> pipelined,
                  std::vector<uint8_t> greeting);
  DeviceLink* findLink(uint32_t handle);
  EngineSnapshot collectSnapshot();
  // Tunnels: lwIP is claimed at the first one (tunnels.cc).
  tunnel::Stack* claimStack(std::string& error);
  tunnel::Tunnel* findTunnel(uint32_t id);
  // A stream tunnelConnect() opened, wherever its tunnel is; null if gone.
  tunnel::Stream* findStream(uint32_t id);
  // Our own non-blocking descriptor for a client's socket, so JS can close
  // its handle (attachClient, attachTunnelClient); -1 with `error`.
  static int ownClientSocket(int fd, std::string& error);
  // Fds on their way to a splice (splices.cc): closed if the posted work is dropped.
  struct SpliceFds {
    SpliceFds(int c, int f) : client(c), far(f) {}
    SpliceFds(const SpliceFds&) = delete;
    SpliceFds& operator=(const SpliceFds&) = delete;
    ~SpliceFds();
    int client;
    int far;
  };
  enum class Mode { Network, Dial, Serve };
  void startSplice(uint32_t id, std::shared_ptr<SpliceFds> fds, std::unique_ptr<tunnel::TlsChannel> tls,
                   std::vector<uint8_t> toFar, std::vector<uint8_t> toClient, Mode mode);
  void tunnelFailed(uint32_t id, uint32_t handle, const char* code, const std::string& reason);
  // Captures: the stop sequence (the tap lets go, then the writer ends).
  void endCapture(uint32_t id, const std::string& reason);
  void captureDone(uint32_t id, const CaptureSummary& summary);
  void stopAllCaptures();
  void closeAllTunnels();

  EventSink& sink_;
  EngineStats stats_;
  core::EventLoop loop_;
  core::BufferPool pool_;
  // After pool_ and loop_, so it goes first: retired devices hold pool blocks.
  std::unique_ptr<usb::LibusbContext> usb_;
  std::atomic<uint32_t> nextHandle_{1};
  std::atomic<uint32_t> nextListener_{1};
  bool started_ = false;

  // Event-thread state.
  std::unordered_map<uint32_t, std::shared_ptr<core::Acceptor>> listeners_;  // cable paths
  std::unordered_map<uint32_t, std::shared_ptr<DeviceLink>> links_;
  std::unordered_map<uint32_t, std::shared_ptr<mux::Connection>> conns_;
  std::unordered_map<uint32_t, WaitingClient> waitingClients_;  // by connection id
  std::unordered_map<uint32_t, std::shared_ptr<SocketSplice>> splices_;  // network Connects, by connection id
  std::unordered_map<uint32_t, std::shared_ptr<ClientDoor>> doors_;
  std::unordered_map<uint32_t, std::shared_ptr<usb::LibusbOpener>> opening_;
  std::unordered_map<uint32_t, FfsEntry> ffs_;
  std::vector<std::shared_ptr<HostedService>> hosted_;
  std::unordered_map<uint32_t, std::shared_ptr<tunnel::Tunnel>> tunnels_;
  std::unordered_map<uint32_t, uint32_t> streamTunnels_;  // stream id -> tunnel id
  std::atomic<uint32_t> nextTunnel_{1};
  tunnel::Stack* stack_ = nullptr;
  core::CaptureTap captureTap_;
  std::unordered_map<uint32_t, std::shared_ptr<CaptureWriter>> captures_;  // event thread
  std::atomic<uint32_t> nextCapture_{1};
};

}  // namespace tsmuxd::engine

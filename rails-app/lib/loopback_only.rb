# frozen_string_literal: true

require "ipaddr"

# The guard of every /bloat route: loopback clients only, unless BLOAT_PROBE_ALLOW_REMOTE
# is on. It looks at the peer address, not remote_ip: X-Forwarded-For is the client's to
# forge. As Rack middleware it guards a mounted app (the metrics); BloatController asks
# allows? itself.
class LoopbackOnly
  def self.allows?(remote_addr)
    Rails.configuration.x.bloat_probe.allow_remote || IPAddr.new(remote_addr.to_s).loopback?
  rescue IPAddr::InvalidAddressError
    false
  end

  def initialize(app)
    @app = app
  end

  def call(env)
    return @app.call(env) if self.class.allows?(env["REMOTE_ADDR"])

    [403, { "content-type" => "text/plain" }, ["Forbidden: loopback clients only (BLOAT_PROBE_ALLOW_REMOTE)\n"]]
  end
end

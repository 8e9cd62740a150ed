# frozen_string_literal: true

require "socket"

module BloatProbe
  # How a Puma worker the Guard retires lets go of its clients, so that none sees a failed
  # request. For DRAIN seconds it goes on serving, but every response closes its connection
  # (a keep-alive client opens a new one, which the other workers share); only then does
  # it stop. Puma closes the connections still idle when it stops at once, and a client
  # may be sending its next request at that moment: the kernel answers a close with a
  # request unread by a reset. So each close is done as HTTP/1.1 asks of a server (RFC
  # 9112, section 9.6): its side first, then what the client still sends is read and
  # dropped until the client closes too; the client reads an end of file, which clients
  # take as a closed idle connection, and sends the request again.
  #
  # Only in the retiring process, after .begin: a Puma thread never waits on a client
  # otherwise. Puma 5.6 and 6 alike.
  module Retirement
    DRAIN = 1.0
    # How long the process may spend in all its lingering closes: a client that has not
    # closed by then is closed on.
    LINGER = 5
    CHUNK = 16 * 1024

    class << self
      def install
        ::Puma::Client.prepend(Connection) unless ::Puma::Client <= Connection
        ::Puma::Server.prepend(Requests) unless ::Puma::Server <= Requests
      end

      # Closes every connection after its response from now on, and stops the process (the
      # block) DRAIN seconds later, on a thread of its own.
      def begin(&stop)
        @deadline = monotonic + DRAIN + LINGER
        Thread.new do
          sleep DRAIN
          stop.call
        end
      end

      def retiring?
        !@deadline.nil?
      end

      # Shuts down the socket's sending side and reads until the client closes, the
      # deadline passes, or the socket fails.
      def linger(io)
        return unless @deadline && io.is_a?(BasicSocket) && !io.closed?

        io.shutdown(Socket::SHUT_WR)
        loop do
          left = @deadline - monotonic
          break if left <= 0 || !io.wait_readable(left)
          break if io.read_nonblock(CHUNK, exception: false).nil?
        end
      rescue IOError, SystemCallError
        nil
      end

      private

      def monotonic
        Process.clock_gettime(Process::CLOCK_MONOTONIC)
      end
    end

    # Prepended to Puma::Client, whose @io is the connection's socket.
    module Connection
      def close
        Retirement.linger(@io)
        super
      end
    end

    # Prepended to Puma::Server: Puma answers a request that asked for Connection: close
    # with a response that says so, and then closes the connection.
    module Requests
      def handle_request(client, *rest)
        client.env["HTTP_CONNECTION"] = "close" if Retirement.retiring?
        super
      end
    end
  end
end

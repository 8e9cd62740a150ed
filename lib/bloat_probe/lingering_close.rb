# frozen_string_literal: true

require "socket"

module BloatProbe
  # A Puma worker the Guard retires closes its connections the way HTTP/1.1 asks of a server
  # (RFC 9112, section 9.6): its side first, then what the client still sends is read and
  # dropped until the client closes too. Puma closes an idle keep-alive connection at once
  # when it stops, and a keep-alive client may be sending its next request at that moment:
  # the kernel answers a close with a request unread by a reset, which the client reports as
  # a failed request. After a half close the client reads an end of file instead, which
  # clients take as a closed idle connection, and send the request again elsewhere.
  #
  # Only after .begin, in the retiring process, and until its deadline: a Puma thread never
  # waits on a client otherwise.
  module LingeringClose
    # How long the process may spend in all its lingering closes: a client that has not
    # closed by then is closed on.
    SECONDS = 5
    CHUNK = 16 * 1024

    class << self
      attr_reader :deadline

      # Puma::Client#close lingers from now on (Puma 5.6 and 6 alike).
      def install
        ::Puma::Client.prepend(Connection) unless ::Puma::Client <= Connection
      end

      def begin(seconds = SECONDS)
        @deadline = monotonic + seconds
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
        LingeringClose.linger(@io)
        super
      end
    end
  end
end

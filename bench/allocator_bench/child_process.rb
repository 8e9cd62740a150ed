# frozen_string_literal: true

require "socket"

module AllocatorBench
  # A program the bench needs did not come up.
  class BootError < StandardError; end

  # A program the bench starts (Puma, Sidekiq, redis-server), in a process group of its
  # own with its output in a log: watched through /proc, and stopped (TERM, then KILL
  # after STOP_TIMEOUT) at the latest when the bench ends, errs or is interrupted.
  module ChildProcess
    STOP_TIMEOUT = 10

    @running = []
    class << self
      attr_reader :running

      def stop_all
        running.dup.each(&:stop)
      end

      # The last lines of a log without backtrace frames, so the error message shows.
      def log_tail(path, lines = 12)
        File.readlines(path).reject { |line| line.lstrip.start_with?("from ") }.last(lines).join
      rescue Errno::ENOENT
        ""
      end

      # Port 0 makes the kernel pick a port no other process listens on.
      def free_port
        server = TCPServer.new("127.0.0.1", 0)
        server.addr[1]
      ensure
        server&.close
      end
    end

    attr_reader :pid, :log_path

    def rss
      File.foreach("/proc/#{@pid}/status") { |line| return line.split[1].to_i * 1024 if line.start_with?("VmRSS:") }
      nil
    rescue Errno::ENOENT, Errno::ESRCH, TypeError
      nil
    end

    def stop
      return unless @pid

      signal_group("TERM")
      deadline = monotonic + STOP_TIMEOUT
      sleep 0.1 while monotonic < deadline && alive?
      signal_group("KILL") if alive?
      reap
      ChildProcess.running.delete(self)
      @pid = nil
    end

    # The memory of the processes of a cluster; nil for a program of one process (Server
    # in cluster mode has one).
    def cluster_memory
      nil
    end

    def alive?
      !@pid.nil? && Process.waitpid(@pid, Process::WNOHANG).nil?
    rescue Errno::ECHILD
      false
    end

    def log_tail(lines = 12)
      ChildProcess.log_tail(@log_path, lines)
    end

    private

    def spawn_child(env, command, chdir:)
      @pid = Process.spawn(env, *command, chdir: chdir, out: @log_path, err: %i[child out], pgroup: true)
      ChildProcess.running << self
      @pid
    end

    # Waits until the block is true, stopping the child if it exits or takes too long.
    def wait_until(timeout, what)
      deadline = monotonic + timeout
      loop do
        raise BootError, "#{what} exited while booting" unless alive?
        return if yield
        raise BootError, "#{what} not ready within #{timeout} s" if monotonic > deadline

        sleep 0.25
      end
    rescue BootError
      stop
      raise
    end

    def signal_group(signal)
      Process.kill(signal, -@pid)
    rescue Errno::ESRCH, Errno::EPERM
      nil
    end

    def reap
      Process.wait(@pid)
    rescue Errno::ECHILD
      nil
    end

    def monotonic
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end
  end
end

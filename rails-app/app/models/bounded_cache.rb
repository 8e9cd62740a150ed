# frozen_string_literal: true

# The newest items within a count and a byte total, oldest out first; thread-safe. What
# is pushed out is handed back, for the caller to free at once.
class BoundedCache
  def initialize(entries:, bytes:, &size)
    @max_entries = entries
    @max_bytes = bytes
    @size = size
    @items = []
    @bytes = 0
    @lock = Mutex.new
  end

  def push(items)
    @lock.synchronize do
      @items.concat(items)
      @bytes += items.sum(&@size)
      out = 0
      while @items.size - out > @max_entries || @bytes > @max_bytes
        @bytes -= @size.call(@items[out])
        out += 1
      end
      @items.shift(out)
    end
  end

  def size
    @lock.synchronize { @items.size }
  end

  def bytes
    @lock.synchronize { @bytes }
  end

  # Empties the cache and hands back what it held.
  def clear
    @lock.synchronize do
      @bytes = 0
      @items.shift(@items.size)
    end
  end
end

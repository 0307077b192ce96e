using System.Net;
using System.Net.Sockets;
using Herd.Native;

namespace Herd.Tests;

// Issue 14 item 4: the Native/ wrappers that take handles, on real sockets.
public sealed class NativeTests
{
    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    public void An_accepted_connection_names_its_peers_address(string loopback)
    {
        var address = IPAddress.Parse(loopback);
        using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(address, 0));
        socket.Listen();
        using var client = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        client.Connect(socket.LocalEndPoint!);

        var listener = ListenerFd.Hold(socket);
        try
        {
            Span<byte> peer = stackalloc byte[ListenerFd.AddressRoom];
            using var connection = listener.Accept(peer, out int length, out int errno);
            Assert.NotNull(connection);
            Assert.Equal(0, errno);
            Assert.Equal(address.GetAddressBytes(), ListenerFd.IpAddressOf(peer[..length]).ToArray());
        }
        finally
        {
            listener.Dispose();
        }
        Assert.True(socket.SafeHandle.IsClosed); // the loop's last act closes it
    }

    [Fact]
    public void A_listener_closed_before_its_loop_began_fails_every_accept_with_EBADF()
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Dispose();
        var listener = ListenerFd.Hold(socket);
        try
        {
            Assert.Null(listener.AcceptSocket(out int errno));
            Assert.Equal(Libc.EBADF, errno);
        }
        finally
        {
            listener.Dispose();
        }
    }

    [Fact]
    public void A_peek_leaves_the_bytes_for_the_next_reader()
    {
        var (mine, theirs) = Fd.SeqPacketPair();
        using var reader = mine.ToSocket();
        using var writer = theirs.ToSocket();
        var buffer = new byte[16];
        Assert.Equal(-Libc.EAGAIN, Peek.Read(reader.SafeHandle, buffer));

        writer.Send("GET /"u8);
        var poll = new PollSet();
        poll.Add(reader.SafeHandle);
        poll.Wait(-1);
        Assert.True(poll.IsReady(0));
        Assert.Equal(5, Peek.Read(reader.SafeHandle, buffer));
        Assert.Equal(5, reader.Receive(buffer)); // still there
        Assert.Equal("GET /"u8.ToArray(), buffer[..5]);

        writer.Dispose();
        Assert.Equal(0, Peek.Read(reader.SafeHandle, buffer)); // end of stream
    }

    [Fact]
    public void A_channel_end_is_told_from_a_listener_and_from_what_is_no_socket()
    {
        var (mine, theirs) = Fd.SeqPacketPair();
        using (mine)
        using (theirs)
            Assert.Equal((Libc.AF_UNIX, Libc.SOCK_SEQPACKET, false), SocketOptions.KindOf(mine));

        using var listening = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listening.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listening.Listen();
        Assert.Equal(((int)AddressFamily.InterNetwork, (int)SocketType.Stream, true), SocketOptions.KindOf(listening.SafeHandle));

        var (read, write) = Fd.Pipe();
        using (read)
        using (write)
            Assert.Null(SocketOptions.KindOf(read));
    }
}

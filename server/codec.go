package server

import (
	"context"
	"strconv"
	"sync"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	protov2 "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/service"
)

// grpc-go turns any error of the codec into codes.Internal, though a request that does not
// decode (a string field holding invalid UTF-8, above all) is the caller's fault. So the
// server's codec, on such a request, leaves the message empty, notes what was wrong with it in
// undecodable, and returns no error; the first interceptor (checkDecoded) takes the note and
// answers InvalidArgument, naming the field.

// codec is grpc-go's proto codec that notes undecodable requests instead of failing.
type codec struct{ encoding.CodecV2 }

// undecodable maps a message that did not decode to what was wrong with it, until
// checkDecoded takes it.
var undecodable sync.Map

func newCodec() codec { return codec{encoding.GetCodecV2(proto.Name)} }

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	m, ok := v.(protov2.Message)
	if err == nil || !ok {
		return err
	}
	protov2.Reset(m)
	e := &calibrate.Error{Kind: calibrate.InvalidInput, Msg: "does not decode as " + string(m.ProtoReflect().Descriptor().FullName())}
	if field := invalidUTF8(m.ProtoReflect().Descriptor(), data.Materialize(), ""); field != "" {
		e.Field, e.Msg = field, "invalid UTF-8: strings must be UTF-8"
	}
	undecodable.Store(m, e)
	return nil
}

// decodeError returns the error of a message that did not decode, and forgets it: an
// InvalidArgument status naming the field, as for any other bad input.
func decodeError(m any) error {
	if e, ok := undecodable.LoadAndDelete(m); ok {
		return service.Status(e.(*calibrate.Error))
	}
	return nil
}

// checkDecoded answers InvalidArgument for a unary request that did not decode.
func checkDecoded(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := decodeError(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// checkDecodedStream answers InvalidArgument for a stream message that did not decode.
func checkDecodedStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, decodedStream{ss})
}

type decodedStream struct{ grpc.ServerStream }

func (s decodedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return decodeError(m)
}

// invalidUTF8 returns the path (paraphrases[2].options[0].label) of the first string field of
// wire-format message b, of descriptor d, that is not UTF-8, or "" when there is none (or b is
// malformed before one).
func invalidUTF8(d protoreflect.MessageDescriptor, b []byte, prefix string) string {
	seen := map[protowire.Number]int{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		if typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return ""
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		fd := d.Fields().ByNumber(num)
		if fd == nil {
			continue
		}
		path := prefix + string(fd.Name())
		if fd.IsList() {
			path += "[" + strconv.Itoa(seen[num]) + "]"
			seen[num]++
		}
		switch fd.Kind() {
		case protoreflect.StringKind:
			if !utf8.Valid(v) {
				return path
			}
		case protoreflect.MessageKind:
			if fd.IsMap() {
				continue
			}
			if p := invalidUTF8(fd.Message(), v, path+"."); p != "" {
				return p
			}
		}
	}
	return ""
}

package sdk

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/vigil-ha/vigil/plugins/sdk/proto"
)

var errServerOnly = errors.New("sdk: the resource plugin client lives in core")

// resourceServer converts between the wire and the driver's Go types.
type resourceServer struct {
	proto.UnimplementedResourceDriverServer
	impl ResourceDriver
	ch   *statusChannel
}

var _ proto.ResourceDriverServer = (*resourceServer)(nil)

func (s *resourceServer) Info(context.Context, *proto.InfoRequest) (*proto.InfoResponse, error) {
	return infoToProto(s.impl.Info()), nil
}

func infoToProto(info Info) *proto.InfoResponse {
	out := &proto.InfoResponse{Name: info.Name, Version: info.Version, ServiceKeywords: keywordsToProto(info.ServiceKeywords)}
	for _, t := range info.Types {
		out.Types = append(out.Types, &proto.TypeInfo{
			Type:           t.Type,
			Keywords:       keywordsToProto(t.Keywords),
			SectionAliases: t.SectionAliases,
			Help:           t.Help,
		})
	}
	return out
}

func (s *resourceServer) Validate(ctx context.Context, req *proto.ResourceRequest) (*proto.ValidateResponse, error) {
	out := &proto.ValidateResponse{}
	for _, e := range s.impl.Validate(ctx, resourceFromProto(req)) {
		out.Errors = append(out.Errors, &proto.ValidationError{Keyword: e.Keyword, Message: e.Message})
	}
	return out, nil
}

func (s *resourceServer) Start(ctx context.Context, req *proto.ResourceRequest) (*proto.ActionResponse, error) {
	log, err := s.impl.Start(ctx, resourceFromProto(req))
	if err != nil {
		return nil, err
	}
	return &proto.ActionResponse{Log: log}, nil
}

func (s *resourceServer) Stop(ctx context.Context, req *proto.ResourceRequest) (*proto.ActionResponse, error) {
	log, err := s.impl.Stop(ctx, resourceFromProto(req))
	if err != nil {
		return nil, err
	}
	return &proto.ActionResponse{Log: log}, nil
}

func (s *resourceServer) Status(ctx context.Context, req *proto.ResourceRequest) (*proto.StatusResponse, error) {
	return statusToProto(s.impl.Status(ctx, resourceFromProto(req))), nil
}

func statusToProto(st ResourceStatus) *proto.StatusResponse {
	return &proto.StatusResponse{Status: proto.Status(st.Status), Log: st.Log, Label: st.Label}
}

// OpenStatusChannel makes the status channel on first call and names it.
func (s *resourceServer) OpenStatusChannel(context.Context, *proto.StatusChannelRequest) (*proto.StatusChannelResponse, error) {
	if s.ch == nil {
		return nil, grpcstatus.Error(codes.Unimplemented, "no status channel")
	}
	path, err := s.ch.open()
	if err != nil {
		return nil, grpcstatus.Error(codes.FailedPrecondition, err.Error())
	}
	return &proto.StatusChannelResponse{Path: path, Version: proto.FrameVersion}, nil
}

func keywordsToProto(kws []Keyword) []*proto.Keyword {
	out := make([]*proto.Keyword, 0, len(kws))
	for _, k := range kws {
		typ := k.Type
		if typ == "" {
			typ = TypeString
		}
		out = append(out, &proto.Keyword{
			Name: k.Name, Type: typ, Default: k.Default, Required: k.Required,
			Aliases: k.Aliases, Help: k.Help, Candidates: k.Candidates,
		})
	}
	return out
}

func resourceFromProto(req *proto.ResourceRequest) Resource {
	r := Resource{RID: req.GetRid(), Type: req.GetType(), Keywords: req.GetKeywords()}
	if r.Keywords == nil {
		r.Keywords = map[string]string{}
	}
	if svc := req.GetService(); svc != nil {
		r.Service = Service{Name: svc.GetName(), Keywords: svc.GetKeywords(), RunDir: svc.GetRunDir(), VarDir: svc.GetVarDir()}
	}
	if r.Service.Keywords == nil {
		r.Service.Keywords = map[string]string{}
	}
	r.Siblings = make(map[string]map[string]string, len(req.GetSiblings()))
	for rid, kw := range req.GetSiblings() {
		r.Siblings[rid] = kw.GetKeywords()
	}
	return r
}

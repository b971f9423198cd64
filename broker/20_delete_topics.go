package broker

// DeleteTopics: v1-6
//
// Behavior:
// * Sent to the controller; other brokers answer NOT_CONTROLLER.
// * By name, or by topic ID from v6. The topic disappears from the very
//   next Metadata response; partition data is deleted by the brokers
//   hosting it as they see the change.
// * delete.topic.enable=false refuses with TOPIC_DELETION_DISABLED.
//
// Version notes:
// * v4: flexible; v5: error message; v6: topic IDs.

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/etcd"
)

func handleDeleteTopics(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.DeleteTopicsRequest)
	resp := r.ResponseKind().(*kmsg.DeleteTopicsResponse)
	ctx, cancel := c.b.adminContext(r.TimeoutMillis)
	defer cancel()
	if fwd, ok := c.forwardIfNotController(ctx, hdr, r); ok {
		return now(fwd), nil
	}

	type target struct {
		name *string
		id   [16]byte
	}
	var targets []target
	if r.Version >= 6 {
		for _, t := range r.Topics {
			targets = append(targets, target{name: t.Topic, id: t.TopicID})
		}
	} else {
		for _, n := range r.TopicNames {
			targets = append(targets, target{name: kmsg.StringPtr(n)})
		}
	}
	for _, t := range targets {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = t.name, t.id
		img := c.b.view.Image()
		var topic *etcd.Topic
		if t.name != nil {
			topic = img.Topics[*t.name]
		} else {
			topic = img.TopicsByID[t.id]
		}
		ctl := c.b.controller.Load() // settled by forwardIfNotController
		switch {
		case ctl == nil:
			st.ErrorCode = kerr.NotController.Code
		case !c.b.cfg.DeleteTopicEnable:
			st.ErrorCode = kerr.TopicDeletionDisabled.Code
		case topic == nil && t.name == nil:
			st.ErrorCode = kerr.UnknownTopicID.Code
		case topic == nil:
			st.ErrorCode = kerr.UnknownTopicOrPartition.Code
		default:
			st.Topic, st.TopicID = kmsg.StringPtr(topic.Name), topic.ID
			rev, err := ctl.DeleteTopic(ctx, topic.Name)
			switch {
			case errors.Is(err, etcd.ErrUnknownTopic):
				st.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case errors.Is(err, etcd.ErrNotController):
				st.ErrorCode = kerr.NotController.Code
			case err != nil:
				c.b.logger.Error("delete topic in etcd", "topic", topic.Name, "err", err)
				st.ErrorCode = kerr.UnknownServerError.Code
			default:
				if err := c.b.view.WaitForRevision(ctx, rev); err != nil {
					st.ErrorCode = kerr.RequestTimedOut.Code
				} else {
					c.b.logger.Info("deleted topic", "topic", topic.Name)
				}
			}
		}
		if st.ErrorCode != 0 && r.Version >= 5 {
			st.ErrorMessage = kmsg.StringPtr(kerr.ErrorForCode(st.ErrorCode).Error())
		}
		resp.Topics = append(resp.Topics, st)
	}
	return now(resp), nil
}

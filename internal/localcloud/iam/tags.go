package iam

import "slices"

// tagList is a tag list element, omitted when empty (encoding/xml writes an empty parent
// element for an empty "Tags>member" field).
type tagList struct {
	Member []tag `xml:"member"`
}

func tagsXML(tags []tag) *tagList {
	if len(tags) == 0 {
		return nil
	}
	return &tagList{Member: tags}
}

type tagsResult struct {
	Tags        []tag `xml:"Tags>member"`
	IsTruncated bool  `xml:"IsTruncated"`
}

// mergeTags adds tags to existing ones, a new value replacing an old one of the same key, up to
// IAM's limit of 50 tags a resource.
func mergeTags(existing, add []tag) ([]tag, error) {
	out := slices.Clone(existing)
	for _, t := range add {
		i := slices.IndexFunc(out, func(e tag) bool { return e.Key == t.Key })
		if i >= 0 {
			out[i] = t
		} else {
			out = append(out, t)
		}
	}
	if len(out) > 50 {
		return nil, limitExceeded("at most 50 tags may be attached to an IAM resource")
	}
	return out, nil
}

// tagResource answers a Tag* call: the request's Tags merged into tags.
func tagResource(tags *[]tag, p params) error {
	add, err := p.tags("Tags")
	if err != nil {
		return err
	}
	merged, err := mergeTags(*tags, add)
	if err != nil {
		// As IAM: a refused call (e.g. past 50 tags) leaves the tags as they were.
		return err
	}
	*tags = merged
	return nil
}

// untagResource answers an Untag* call: the request's TagKeys removed from tags.
func untagResource(tags *[]tag, p params) {
	remove := p.list("TagKeys")
	*tags = slices.DeleteFunc(*tags, func(t tag) bool { return slices.Contains(remove, t.Key) })
}

// listTags answers a List*Tags call with a copy of tags.
func listTags(tags []tag) tagsResult {
	return tagsResult{Tags: append([]tag{}, tags...)}
}

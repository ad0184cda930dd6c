package ec2

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// ImageSpec registers a local image: a program that instances of the image run.
type ImageSpec struct {
	Name         string // AMI name; must be unique in the account
	Description  string
	Architecture string   // x86_64 | arm64; default: this machine's
	Binary       string   // path of the program; copied into the state directory
	Args         []string // arguments (default ["boot"])
	Tags         map[string]string
}

// LocalArchitecture is EC2's name for the architecture this emulator runs on.
func LocalArchitecture() string {
	if runtime.GOARCH == "arm64" {
		return "arm64"
	}
	return "x86_64"
}

// BrokerImageSpec is the image S4 describes for a tributary-broker binary of version.
func BrokerImageSpec(binary, version, arch string) ImageSpec {
	if arch == "" {
		arch = LocalArchitecture()
	}
	return ImageSpec{
		Name:         fmt.Sprintf("tributary-broker-%s-%s", version, arch),
		Description:  fmt.Sprintf("Tributary broker %s (local image)", version),
		Architecture: arch,
		Binary:       binary,
		Args:         []string{"boot"},
		Tags:         map[string]string{"tributary:version": version, "tributary:component": "broker"},
	}
}

// RegisterImage adds a local image, or updates the program of the image with the same name
// (local images are mutable so a rebuilt binary keeps its AMI id; running instances use the new
// program from their next boot). It returns the image id.
func (s *Service) RegisterImage(spec ImageSpec) (string, error) {
	if spec.Name == "" {
		return "", errors.New("an image needs a name")
	}
	if spec.Architecture == "" {
		spec.Architecture = LocalArchitecture()
	}
	if spec.Architecture != "x86_64" && spec.Architecture != "arm64" {
		return "", fmt.Errorf("architecture %q is not x86_64 or arm64", spec.Architecture)
	}
	if spec.Args == nil {
		spec.Args = []string{"boot"}
	}
	if err := validateTags(spec.Tags); err != nil {
		return "", err
	}
	sum := ""
	if spec.Binary != "" {
		var err error
		if sum, err = fileSHA256(spec.Binary); err != nil {
			return "", fmt.Errorf("reading image binary: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var img *image
	for _, i := range s.st.Images {
		if i.Name == spec.Name {
			img = i
		}
	}
	if img == nil {
		img = &image{ID: newID("ami"), Name: spec.Name, OwnerID: s.account, Created: s.now(), RootDevice: "/dev/xvda", RootSize: 8}
	}
	img.Description, img.Architecture, img.Args = spec.Description, spec.Architecture, spec.Args
	img.Tags = tags{}
	for k, v := range spec.Tags {
		img.Tags[k] = v
	}
	if spec.Binary != "" && sum != img.BinarySHA {
		dst := filepath.Join(s.dir, "images", img.ID, "program")
		if err := copyExecutable(spec.Binary, dst); err != nil {
			return "", err
		}
		img.Binary, img.BinarySHA = dst, sum
	}
	s.st.Images[img.ID] = img
	if err := s.commitLocked(); err != nil {
		return "", err
	}
	s.log.Info("image registered", "image", img.ID, "name", img.Name, "binary", spec.Binary)
	return img.ID, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyExecutable copies src to dst through a temporary file and a rename, so an instance
// starting at the same moment never runs a half-written program ("text file busy" included).
func copyExecutable(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("creating image directory: %w", err)
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("opening %s: %w", src, err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".program-*")
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("installing image program: %w", err)
	}
	return nil
}

func (s *Service) findImageLocked(id string) (*image, error) {
	if img, ok := s.st.Images[id]; ok {
		return img, nil
	}
	if err := checkID(id, "ami", "InvalidAMIID.Malformed"); err != nil {
		return nil, err
	}
	return nil, awsapi.Errorf("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
}

func (s *Service) xImage(img *image) xImage {
	return xImage{ImageID: img.ID, ImageLocation: s.account + "/" + img.Name, ImageState: "available", ImageOwnerID: img.OwnerID,
		CreationDate: ec2Time(img.Created), Architecture: img.Architecture, ImageType: "machine", Name: img.Name, Description: img.Description,
		RootDeviceType: "ebs", RootDeviceName: img.RootDevice, VirtualizationType: "hvm", Hypervisor: "xen", EnaSupport: true,
		BootMode: "uefi-preferred", ImdsSupport: "v2.0", PlatformDetails: "Linux/UNIX", UsageOperation: "RunInstances",
		BlockDeviceMapping: []xBlockDeviceMapping{{DeviceName: img.RootDevice, EBS: xEBSBlockDevice{VolumeSize: img.RootSize, DeleteOnTermination: true, VolumeType: "gp3"}}},
		Tags:               tagItems(img.Tags)}
}

func (s *Service) describeImages(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := p.list("ImageId")
	for _, id := range ids {
		if _, err := s.findImageLocked(id); err != nil {
			return nil, err
		}
	}
	candidates := s.st.Images
	if owners := p.list("Owner"); len(owners) > 0 && !slices.Contains(owners, "self") {
		// "amazon", "aws-marketplace" and other accounts own nothing here.
		candidates = keepWhere(candidates, func(img *image) bool { return slices.Contains(owners, img.OwnerID) })
	}
	filters := parseFilters(p)
	keep, err := selectMatching(candidates, ids, filters, func(img *image) (tags, fieldFunc) {
		return img.Tags, func(name string) ([]string, bool) {
			switch name {
			case "image-id":
				return []string{img.ID}, true
			case "name":
				return []string{img.Name}, true
			case "description":
				return []string{img.Description}, true
			case "architecture":
				return []string{img.Architecture}, true
			case "state":
				return []string{"available"}, true
			case "owner-id":
				return []string{img.OwnerID}, true
			case "owner-alias":
				return nil, true
			case "is-public":
				return []string{"false"}, true
			case "image-type":
				return []string{"machine"}, true
			case "root-device-type":
				return []string{"ebs"}, true
			case "root-device-name":
				return []string{img.RootDevice}, true
			case "virtualization-type":
				return []string{"hvm"}, true
			case "platform-details":
				return []string{"Linux/UNIX"}, true
			case "hypervisor":
				return []string{"xen"}, true
			}
			return nil, false
		}
	})
	if err != nil {
		return nil, err
	}
	pg, next, err := page(keep, p, 1, 1000)
	if err != nil {
		return nil, err
	}
	out := &struct {
		meta
		Images    items[xImage] `xml:"imagesSet"`
		NextToken string        `xml:"nextToken,omitempty"`
	}{NextToken: next}
	for _, id := range pg {
		out.Images = append(out.Images, s.xImage(s.st.Images[id]))
	}
	return respond(req, out)
}

func (s *Service) deregisterImage(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	id, err := p.required("ImageId")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	img, err := s.findImageLocked(id)
	if err != nil {
		return nil, err
	}
	delete(s.st.Images, img.ID)
	// The program stays on disk while instances of the image may still boot from it; it is
	// removed with the image directory once no instance refers to the image.
	inUse := false
	for _, inst := range s.st.Instances {
		if inst.ImageID == img.ID && inst.State != stateTerminated {
			inUse = true
		}
	}
	if !inUse {
		_ = os.RemoveAll(filepath.Join(s.dir, "images", img.ID))
	}
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return respond(req, &returnTrue{Return: true})
}

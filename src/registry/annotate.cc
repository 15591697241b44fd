// annotate: what is learned about a version after its registration (tags,
// description, late metrics), recorded as one ModelAnnotated event.
#include "events/model_events.h"
#include "model/naming.h"
#include "registry/internal.h"
#include "registry/registry.h"

namespace modelreg::registry {

Result<WriteResult> Registry::Annotate(const std::string& type, const std::string& version,
                                       const AnnotationInput& in, const Actor& actor) {
  MODELREG_RETURN_IF_ERROR(internal::CheckActor(actor));
  MODELREG_RETURN_IF_ERROR(model::ValidateModelType(type));
  MODELREG_RETURN_IF_ERROR(model::ValidateVersion(version));
  MODELREG_RETURN_IF_ERROR(CheckAnnotation(in, actor.reason));
  const std::string name = internal::Name(type, version);
  auto r = Write(type, [&](const State& s) -> Result<std::string> {
    const VersionRecord* rec = s.Find(type, version);
    if (rec == nullptr) return Err(Status::NotFound(name + " is not registered"));
    if (rec->purged) {
      return Err(Status::FailedPrecondition(name + " has had its artifact purged; it can no "
                                            "longer be annotated"));
    }
    events::Annotation a{type,           version,    in.set_tags, in.removed_tags,
                         in.description, in.metrics, in.source,   actor.reason};
    return events::Draft(internal::EnvelopeFor(actor, NewEventId()), a);
  });
  if (!r) return Err(r.error());
  std::string summary = "annotated " + name;
  std::string what;
  auto add = [&what](const std::string& w) { what += (what.empty() ? "" : ", ") + w; };
  if (!in.set_tags.empty()) add(std::to_string(in.set_tags.size()) + " tag(s) set");
  if (!in.removed_tags.empty()) add(std::to_string(in.removed_tags.size()) + " tag(s) removed");
  if (in.description) add(in.description->empty() ? "description cleared" : "description set");
  if (!in.metrics.empty()) {
    add(std::to_string(in.metrics.size()) + " metric(s) from " + in.source);
  }
  return WriteResult{r->seq, summary + " (" + what + ")"};
}

}  // namespace modelreg::registry

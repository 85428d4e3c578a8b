//! `#[saga]`: on the state struct, the `Saga` impl (name, registration) and the default
//! association; on its impl block, one `SagaHandles<E>` per `#[step(..)]` method and the
//! sending of every command the steps plan.

mod expand;
mod model;
mod parse;
mod validate;

use proc_macro2::TokenStream;

use crate::common::{fallback, wrong_item};

pub(crate) fn saga(args: TokenStream, item: TokenStream) -> TokenStream {
    match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Struct(s)) => {
            let (model, errors) = parse::parse_struct(args, &s);
            errors.emit_with(expand::expand_struct(&model, item))
        }
        Ok(syn::Item::Impl(imp)) => {
            let (model, errors) = parse::parse_impl(args, imp);
            errors.emit_with(expand::expand_impl(&model))
        }
        Ok(syn::Item::Enum(e)) => {
            let (keyword, ident) = (&e.enum_token, &e.ident);
            let span = quote::quote!(#keyword #ident);
            let message = "`#[saga]` goes on a struct, the saga's state; keep the phase it is in as a field of that struct, like `phase: Phase`";
            fallback(item, &syn::Error::new_spanned(span, message))
        }
        _ => fallback(
            item.clone(),
            &wrong_item("saga", "the saga's state struct and on its impl block of `#[step(..)]` methods", &item),
        ),
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::model::{Association, Codegen, Sends, Transition};
    use super::parse;

    fn messages(errors: super::super::common::Errors) -> Vec<String> {
        errors.finish(()).err().map(|e| e.into_iter().map(|e| e.to_string()).collect()).unwrap_or_default()
    }

    #[test]
    fn step_options_become_the_model() {
        let imp = syn::parse_quote! {
            impl Fulfilment {
                #[step(start, send = A, compensate = K)]
                fn placed(&mut self, e: &Placed) -> (A, K) { todo!() }
                #[step(by_correlation, tcc_begin, send_all = [B, C], suspend, timeout = "5m")]
                fn reserved(&mut self, e: &Envelope<Reserved>) -> (B, C) { todo!() }
                #[step(associate = order, tcc(try = T, confirm = U, cancel = V, deadline = "30s"), tcc_confirm, complete)]
                fn charged(&mut self, e: &Charged) -> (T, U, V) { todo!() }
                fn helper(&self) {}
            }
        };
        let (model, errors) = parse::parse_impl(quote!(), imp);
        assert!(messages(errors).is_empty());
        let [placed, reserved, charged] = model.steps.as_slice() else { panic!("three steps") };
        assert!(placed.start && matches!(placed.association, Association::Default));
        assert!(matches!(&placed.sends, Sends::One { compensate: Some(_), .. }));
        assert!(reserved.envelope && matches!(reserved.association, Association::Correlation));
        assert!(matches!(&reserved.sends, Sends::All { commands, compensate: None } if commands.len() == 2));
        assert!(matches!(reserved.transition, Transition::Suspend(Some(300_000))));
        assert!(matches!(&charged.association, Association::Field(f) if f == "order"));
        assert!(matches!(&charged.sends, Sends::Tcc(t) if t.deadline == Some(30_000)));
        assert!(charged.tcc_confirm.is_some() && matches!(charged.transition, Transition::Complete));
        assert!(model.steps.iter().all(|s| s.codegen == Codegen::Full));
        // The markers are gone, the other methods untouched.
        let item = &model.item;
        let item = quote!(#item).to_string();
        assert!(!item.contains("step"), "{item}");
        assert!(item.contains("fn helper"), "{item}");
    }

    #[test]
    fn every_mistake_of_an_impl_block_is_reported_at_once() {
        let imp = syn::parse_quote! {
            impl Fulfilment {
                #[step(compensate = K, complete, fail, timeout = "soon")]
                fn placed(&self, e: Placed) {}
                #[step(tcc(try = T, confirm = U), tcc_confirm)]
                fn reserved(&mut self, e: &Reserved) -> (T, U) { todo!() }
                #[step(send_all = [A, B], compensate = [K])]
                fn again(&mut self, e: &Reserved) -> (A, B) { todo!() }
            }
        };
        let (model, errors) = parse::parse_impl(quote!(), imp);
        let errors = messages(errors);
        for expected in [
            "`compensate` undoes the command",
            "keep one of `complete`, `fail` and `suspend`",
            "`timeout` takes a whole, positive number",
            "take `&mut self`",
            "`#[step]` methods borrow the event",
            "`tcc(..)` needs `cancel`",
            "`send_all` lists 2 commands but `compensate` lists 1",
            "event `Reserved` already has the step `reserved`",
            "no step of this saga starts it",
            "TCC without a begin",
        ] {
            assert!(errors.iter().any(|e| e.contains(expected)), "missing {expected:?} in {errors:#?}");
        }
        assert_eq!(errors.len(), 10, "{errors:#?}");
        let codegen: Vec<Codegen> = model.steps.iter().map(|s| s.codegen).collect();
        assert_eq!(codegen, [Codegen::Stub, Codegen::Stub, Codegen::Duplicate]);
    }

    #[test]
    fn deadline_methods_become_steps_fired_by_time() {
        let imp = syn::parse_quote! {
            impl Watch {
                #[step(start, arm = [remind, lost])]
                fn out(&mut self, e: &Out) {}
                #[step(disarm = remind, complete)]
                fn back(&mut self, e: &Back) {}
                #[deadline(after = "14d", send = Remind, arm = lost)]
                fn remind(&mut self) -> Remind { todo!() }
                #[deadline(after = "30m", complete)]
                fn lost(&mut self) {}
            }
        };
        let (model, errors) = parse::parse_impl(quote!(), imp);
        assert!(messages(errors).is_empty());
        let [out, back, remind, lost] = model.steps.as_slice() else { panic!("four steps") };
        assert_eq!(out.arms.iter().map(ToString::to_string).collect::<Vec<_>>(), ["remind", "lost"]);
        assert_eq!(back.disarms.iter().map(ToString::to_string).collect::<Vec<_>>(), ["remind"]);
        assert!(out.timer.is_none() && back.timer.is_none());
        let timer = |s: &super::model::StepFn| s.timer.as_ref().map(|t| (t.name.clone(), t.after));
        assert_eq!(timer(remind), Some(("remind".to_owned(), 14 * 86_400_000)));
        assert_eq!(timer(lost), Some(("lost".to_owned(), 1_800_000)));
        assert!(remind.event.is_none() && matches!(&remind.sends, Sends::One { compensate: None, .. }));
        assert!(matches!(lost.transition, Transition::Complete));
        let item = &model.item;
        assert!(!quote!(#item).to_string().contains("deadline"), "the markers are gone");
    }

    #[test]
    fn a_misspelled_association_is_one_error_and_still_read() {
        let item = syn::parse_quote!(
            struct Fulfilment;
        );
        let (model, errors) = parse::parse_struct(quote!(name = "f", asociate = order_id), &item);
        assert!(matches!(model.associate, super::model::DefaultAssociation::Field(f) if f == "order_id"));
        assert_eq!(messages(errors), ["unknown `#[saga]` argument `asociate`; did you mean `associate`?"]);
        let (model, errors) = parse::parse_struct(quote!(associate = "order_id"), &item);
        assert!(matches!(model.associate, super::model::DefaultAssociation::Broken));
        assert_eq!(messages(errors), ["`associate` takes a name; write `associate = field_name`"]);
        let (model, errors) = parse::parse_struct(quote!(associate = order_id), &item);
        assert!(matches!(model.associate, super::model::DefaultAssociation::Field(f) if f == "order_id"));
        assert!(messages(errors).is_empty());
        assert_eq!(model.name.value(), "Fulfilment");
    }
}
